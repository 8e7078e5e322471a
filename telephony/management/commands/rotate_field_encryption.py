"""Re-encrypt every stored secret with the first of FIELD_ENCRYPTION_KEYS.

Key rotation: put the new key first (FIELD_ENCRYPTION_KEYS=new,old), restart, run this,
then drop the old key. A value that none of the keys decrypts stops the command, naming
it: it is never skipped or copied as it was.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context, schema_exists

from nixflex.encryption import DecryptionError, EncryptedTextField, reencrypt

BATCH = 500


def encrypted_columns(app_labels: set[str]) -> list[tuple[type[models.Model], list[str]]]:
    found = []
    for model in apps.get_models():
        if model._meta.app_label not in app_labels or model._meta.proxy or not model._meta.managed:
            continue
        columns = [field.column for field in model._meta.concrete_fields if isinstance(field, EncryptedTextField)]
        if columns:
            found.append((model, columns))
    return found


def reencrypt_schema(models_columns: list[tuple[type[models.Model], list[str]]], schema_name: str) -> int:
    """Rewrite every encrypted value of this schema; returns how many were rewritten."""
    rewritten = 0
    with schema_context(schema_name), transaction.atomic(), connection.cursor() as cursor:
        for model, columns in models_columns:
            table, pk = model._meta.db_table, model._meta.pk.column
            for column in columns:
                cursor.execute(
                    f'SELECT "{pk}", "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL '
                    f'AND "{column}" <> %s ORDER BY "{pk}" FOR UPDATE',
                    [""],
                )
                rows = cursor.fetchall()
                for start in range(0, len(rows), BATCH):
                    updates = []
                    for row_pk, stored in rows[start : start + BATCH]:
                        try:
                            updates.append((reencrypt(stored), row_pk))
                        except DecryptionError:
                            raise CommandError(
                                f"{schema_name}.{table}.{column} {pk}={row_pk} cannot be decrypted "
                                "with any of FIELD_ENCRYPTION_KEYS: nothing was changed in this "
                                "schema. Add the key it was written with and run again."
                            ) from None
                    cursor.executemany(f'UPDATE "{table}" SET "{column}" = %s WHERE "{pk}" = %s', updates)
                    rewritten += len(updates)
    return rewritten


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first of FIELD_ENCRYPTION_KEYS (after adding a new key)."

    def handle(self, *args: Any, **options: Any) -> None:
        public = get_public_schema_name()
        shared = {name.rsplit(".", 1)[-1] for name in settings.SHARED_APPS}
        tenant = {name.rsplit(".", 1)[-1] for name in settings.TENANT_APPS}
        total, schemas = reencrypt_schema(encrypted_columns(shared - tenant), public), 1
        tenant_columns = encrypted_columns(tenant)
        names = [
            settings.TENANT_BASE_SCHEMA,
            *get_tenant_model()
            .objects.exclude(schema_name=public)
            .order_by("schema_name")
            .values_list("schema_name", flat=True),
        ]
        for schema_name in names:
            if schema_exists(schema_name):
                total += reencrypt_schema(tenant_columns, schema_name)
                schemas += 1
        self.stdout.write(f"Re-encrypted {total} values in {schemas} schemas with the first key.")
