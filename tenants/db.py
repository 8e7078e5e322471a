"""The database connection as django-tenants extends it."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db import connection

if TYPE_CHECKING:  # the backend module needs configured settings; only its type is wanted here
    from django_tenants.postgresql_backend.base import DatabaseWrapper


def tenant_connection() -> DatabaseWrapper:
    """`django.db.connection`, typed as the django-tenants backend it is (schema_name,
    set_tenant, set_schema_to_public)."""
    return cast("DatabaseWrapper", connection)
