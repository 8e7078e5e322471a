"""URLs of an account's own domain: its dashboard and portal (and the API, keyed)."""

from django.urls import include, path

urlpatterns = [
    path("", include("nixflex.urls_api")),
]
