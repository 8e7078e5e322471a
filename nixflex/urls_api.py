"""/v1/: the public REST API. The tenant comes from the API key, not the Host."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from agents.api import AgentDetailApi, AgentListApi, VoiceListApi
from customers.api import CustomerDetailApi, CustomerListApi
from nixflex.docs import api_description
from nixflex.errors import ApiError, error_json_response
from telephony.api import (
    JobDetailApi,
    JobListApi,
    PhoneNumberBulkApi,
    PhoneNumberDetailApi,
    PhoneNumberListApi,
    PhoneNumberRepairApi,
    TwilioAccountCredentialsApi,
    TwilioAccountDetailApi,
    TwilioAccountListApi,
)
from telephony.api_calls import CallDetailApi, CallListApi


def unknown_route(request: HttpRequest) -> JsonResponse:
    return error_json_response(
        ApiError("not_found", f"No such endpoint: {request.method} {request.path}.", {"path": request.path})
    )


urlpatterns = [
    path("v1/agents", AgentListApi.as_view()),
    path("v1/agents/<str:agent_id>", AgentDetailApi.as_view()),
    path("v1/voices", VoiceListApi.as_view()),
    path("v1/customers", CustomerListApi.as_view()),
    path("v1/customers/<str:customer_id>", CustomerDetailApi.as_view()),
    path("v1/phone-numbers", PhoneNumberListApi.as_view()),
    path("v1/phone-numbers/bulk", PhoneNumberBulkApi.as_view()),
    path("v1/phone-numbers/<str:e164>", PhoneNumberDetailApi.as_view()),
    path("v1/phone-numbers/<str:e164>/repair", PhoneNumberRepairApi.as_view()),
    path("v1/twilio-accounts", TwilioAccountListApi.as_view()),
    path("v1/twilio-accounts/<str:account_sid>", TwilioAccountDetailApi.as_view()),
    path("v1/twilio-accounts/<str:account_sid>/credentials", TwilioAccountCredentialsApi.as_view()),
    path("v1/jobs", JobListApi.as_view()),
    path("v1/jobs/<str:job_id>", JobDetailApi.as_view()),
    path("v1/calls", CallListApi.as_view()),
    path("v1/calls/<str:call_id>", CallDetailApi.as_view()),
    path(
        "v1/openapi.json",
        SpectacularJSONAPIView.as_view(
            authentication_classes=[],
            permission_classes=[],
            throttle_classes=[],
            custom_settings={"DESCRIPTION": api_description()},
        ),
        name="openapi",
    ),
    path(
        "v1/docs",
        SpectacularSwaggerView.as_view(
            url_name="openapi",
            authentication_classes=[],
            permission_classes=[],
            throttle_classes=[],
        ),
        name="docs",
    ),
    re_path(r"^v1/", unknown_route),
]
