from typing import Any, ClassVar, Self

from django.db import models

class TenantMixin(models.Model):
    auto_drop_schema: ClassVar[bool]
    auto_create_schema: ClassVar[bool]
    clone_mode: ClassVar[str]
    schema_name = models.CharField(max_length=63, unique=True)
    # Abstract, but every concrete tenant model (`get_tenant_model()`) has its default manager.
    objects: ClassVar[models.Manager[Self]]

    class Meta:
        abstract = True

    def save(self, verbosity: int = ..., *args: Any, **kwargs: Any) -> None: ...
    def delete(self, force_drop: bool = ..., *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]: ...  # type: ignore[override]  # django-tenants adds force_drop first
    def create_schema(self, check_if_exists: bool = ..., sync_schema: bool = ..., verbosity: int = ...) -> bool: ...
    def get_primary_domain(self) -> DomainMixin | None: ...

class DomainMixin(models.Model):
    domain = models.CharField(max_length=253, unique=True)
    tenant: models.ForeignKey[Any, Any]
    is_primary = models.BooleanField(default=True)

    class Meta:
        abstract = True
