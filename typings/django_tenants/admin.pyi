from typing import Any

class TenantAdminMixin:
    def __getattr__(self, name: str) -> Any: ...
