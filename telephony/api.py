"""/v1/phone-numbers and /v1/jobs."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nixflex.openapi import api_errors
from nixflex.pagination import PageQuery, paginate
from telephony import selectors, tasks
from telephony.models import Job
from telephony.services import jobs, numbers

_ImportBody = inline_serializer("PhoneNumberImport", {
    "phone_number": serializers.CharField(help_text="E.164, like +447446466847"),
    "twilio_sid": serializers.CharField(help_text="Your Twilio Account SID (AC + 32 hex)"),
    "twilio_token": serializers.CharField(help_text="Your Twilio auth token; stored encrypted, never returned"),
    "agent_id": serializers.CharField(),
    "customer_id": serializers.CharField(required=False),
    "friendly_name": serializers.CharField(required=False),
})


# Declared shapes of the number and job objects are still free-form (OpenApiTypes.OBJECT)
# until they get output serializers; the error codes are complete.
_NUMBER_ERRORS = ("phone_number_not_found", "twilio_auth_failed", "provider_unavailable")


class PhoneNumberListApi(APIView):
    @extend_schema(parameters=[PageQuery, OpenApiParameter("agent_id", str), OpenApiParameter("customer_id", str)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(paginate(request, selectors.list_numbers(request.query_params), numbers.render_number,
                                 cursor_field="phone_number"))

    @extend_schema(request=_ImportBody, responses={201: dict})
    @api_errors("invalid_phone_format", "invalid_twilio_sid", "number_not_in_twilio", "twilio_invalid_credentials",
                "agent_not_found", "agent_not_owned", "customer_not_found", "number_already_imported",
                "provider_unavailable")
    def post(self, request: Request) -> Response:
        number = numbers.import_number(account=request.user.account, api_key_id=request.auth.key_id,
                                       data=request.data)
        return Response(numbers.render_number(number), status=201)


class PhoneNumberDetailApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    @api_errors("phone_number_not_found")
    def get(self, request: Request, e164: str) -> Response:
        return Response(numbers.render_number(numbers.get_number(e164)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    @api_errors("phone_number_not_found", "number_already_imported", "customer_not_found")
    def patch(self, request: Request, e164: str) -> Response:
        number = numbers.update_number(number=numbers.get_number(e164), data=request.data)
        return Response(numbers.render_number(number))

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @api_errors(*_NUMBER_ERRORS)
    def delete(self, request: Request, e164: str) -> Response:
        numbers.delete_number(account=request.user.account, number=numbers.get_number(e164))
        return Response({"object": "phone_number", "phone_number": e164, "deleted": True})


class PhoneNumberRepairApi(APIView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @api_errors(*_NUMBER_ERRORS)
    def post(self, request: Request, e164: str) -> Response:
        return Response(numbers.render_number(numbers.repair_webhooks(numbers.get_number(e164))))


class PhoneNumberBulkApi(APIView):
    @extend_schema(request=inline_serializer("BulkImport", {"numbers": serializers.ListField(child=_ImportBody)}),
                   responses={202: dict})
    def post(self, request: Request) -> Response:
        job = jobs.create_bulk_import(api_key_id=request.auth.key_id, data=request.data,
                                      enqueue=lambda job: tasks.bulk_import_numbers.delay(job.id))
        return Response(jobs.render_job(job, with_rows=False), status=202)


class JobListApi(APIView):
    @extend_schema(parameters=[PageQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(paginate(request, Job.objects.all(), lambda job: jobs.render_job(job, with_rows=False)))


class JobDetailApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    @api_errors("job_not_found")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(jobs.render_job(jobs.get_job(job_id)))
