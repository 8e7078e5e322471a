"""The Celery app. Tasks carry the schema they were queued in (tenant-schemas-celery)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import TenantTask

from tenants.db import tenant_connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nixflex.settings")

app = CeleryApp("nixflex")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["nixflex"])


class MissingTenantError(RuntimeError):
    """A tenant task ran without an account: refuse rather than read the public schema."""


class RequiresTenantTask(TenantTask):
    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tenant_connection().schema_name == "public":
            raise MissingTenantError(
                f"task {self.name} was queued without a tenant; queue it inside the account's schema"
            )
        return super().__call__(*args, **kwargs)


def tenant_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Decorator for tasks that work on one account's data."""
    return app.task(base=RequiresTenantTask, **options)


def platform_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Decorator for tasks that work across accounts (they switch schemas themselves)."""
    return app.task(**options)
