from typing import Any

from django.db.backends.postgresql.base import DatabaseWrapper as _PostgresWrapper

class DatabaseWrapper(_PostgresWrapper):
    schema_name: str
    tenant: Any
    def set_tenant(self, tenant: Any, include_public: bool = ...) -> None: ...
    def set_schema(self, schema_name: str, include_public: bool = ..., tenant_type: str | None = ...) -> None: ...
    def set_schema_to_public(self) -> None: ...
