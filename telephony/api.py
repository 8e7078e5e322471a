"""/v1/phone-numbers, /v1/jobs and /v1/twilio-accounts. Thin: parse with an input serializer,
call the service, render with an output serializer."""

from __future__ import annotations

from functools import partial

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nixflex.api import render, request_account, request_api_key
from nixflex.openapi import api_errors
from nixflex.pagination import list_of, paginate
from telephony import selectors, tasks
from telephony.models import Job
from telephony.serializers import (
    BulkImportInput,
    JobDetailOutput,
    JobOutput,
    PhoneNumberDeletedOutput,
    PhoneNumberDeleteQuery,
    PhoneNumberImportInput,
    PhoneNumberListQuery,
    PhoneNumberOutput,
    PhoneNumberUpdateInput,
    TwilioAccountDeletedOutput,
    TwilioAccountOutput,
    TwilioAccountUpdateInput,
    TwilioCredentialsInput,
)
from telephony.services import jobs, numbers, twilio_accounts

PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="1 to 100 (default 20)"),
    OpenApiParameter("starting_after", str, description="The last item of the previous page"),
]


# --- Phone numbers ---------------------------------------------------------------------

_NUMBER_ERRORS = ("phone_number_not_found", "twilio_auth_failed", "provider_unavailable")


class PhoneNumberListApi(APIView):
    @extend_schema(
        operation_id="phone_numbers_list",
        parameters=[PhoneNumberListQuery, *PAGE_PARAMETERS],
        responses=list_of(PhoneNumberOutput),
    )
    def get(self, request: Request) -> Response:
        query = PhoneNumberListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            paginate(
                request,
                selectors.list_numbers(**query.validated_data),
                partial(render, PhoneNumberOutput),
                cursor_field="phone_number",
            )
        )

    @extend_schema(
        operation_id="phone_numbers_import", request=PhoneNumberImportInput, responses={201: PhoneNumberOutput}
    )
    @api_errors(
        "invalid_phone_format",
        "invalid_twilio_sid",
        "number_not_in_twilio",
        "twilio_invalid_credentials",
        "agent_not_found",
        "agent_not_owned",
        "customer_not_found",
        "number_already_imported",
        "provider_unavailable",
    )
    def post(self, request: Request) -> Response:
        data = PhoneNumberImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        number = numbers.import_number(
            account=request_account(request), api_key_id=request_api_key(request).key_id, **data.validated_data
        )
        return Response(PhoneNumberOutput(number).data, status=201)


class PhoneNumberDetailApi(APIView):
    @extend_schema(operation_id="phone_numbers_retrieve", responses=PhoneNumberOutput)
    @api_errors("phone_number_not_found")
    def get(self, request: Request, e164: str) -> Response:
        return Response(PhoneNumberOutput(numbers.get_number(e164)).data)

    @extend_schema(operation_id="phone_numbers_update", request=PhoneNumberUpdateInput, responses=PhoneNumberOutput)
    @api_errors("phone_number_not_found", "number_already_imported", "customer_not_found")
    def patch(self, request: Request, e164: str) -> Response:
        number = numbers.get_number(e164)
        data = PhoneNumberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(PhoneNumberOutput(numbers.update_number(number=number, **data.validated_data)).data)

    @extend_schema(
        operation_id="phone_numbers_delete",
        parameters=[PhoneNumberDeleteQuery],
        responses={200: PhoneNumberDeletedOutput},
    )
    @api_errors(*_NUMBER_ERRORS)
    def delete(self, request: Request, e164: str) -> Response:
        query = PhoneNumberDeleteQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        removal = numbers.delete_number(
            account=request_account(request), number=numbers.get_number(e164), force=query.validated_data["force"]
        )
        return Response(PhoneNumberDeletedOutput(removal).data)


class PhoneNumberRepairApi(APIView):
    @extend_schema(operation_id="phone_numbers_repair_webhooks", request=None, responses=PhoneNumberOutput)
    @api_errors(*_NUMBER_ERRORS)
    def post(self, request: Request, e164: str) -> Response:
        return Response(PhoneNumberOutput(numbers.repair_webhooks(numbers.get_number(e164))).data)


class PhoneNumberBulkApi(APIView):
    @extend_schema(operation_id="phone_numbers_bulk_import", request=BulkImportInput, responses={202: JobOutput})
    def post(self, request: Request) -> Response:
        data = BulkImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = jobs.create_bulk_import(
            api_key_id=request_api_key(request).key_id,
            rows=data.validated_data["numbers"],
            enqueue=lambda job: tasks.bulk_import_numbers.delay(job.id),
        )
        return Response(JobOutput(job).data, status=202)


# --- Jobs --------------------------------------------------------------------------------


class JobListApi(APIView):
    @extend_schema(operation_id="jobs_list", parameters=PAGE_PARAMETERS, responses=list_of(JobOutput))
    def get(self, request: Request) -> Response:
        return Response(paginate(request, Job.objects.all(), partial(render, JobOutput)))


class JobDetailApi(APIView):
    @extend_schema(operation_id="jobs_retrieve", responses=JobDetailOutput)
    @api_errors("job_not_found")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobDetailOutput(jobs.get_job(job_id)).data)


# --- Twilio accounts ------------------------------------------------------------------------


class TwilioAccountListApi(APIView):
    @extend_schema(
        operation_id="twilio_accounts_list", parameters=PAGE_PARAMETERS, responses=list_of(TwilioAccountOutput)
    )
    def get(self, request: Request) -> Response:
        return Response(
            paginate(
                request,
                selectors.list_twilio_accounts(),
                partial(render, TwilioAccountOutput),
                cursor_field="account_sid",
            )
        )


class TwilioAccountDetailApi(APIView):
    @extend_schema(operation_id="twilio_accounts_retrieve", responses=TwilioAccountOutput)
    @api_errors("twilio_account_not_found")
    def get(self, request: Request, account_sid: str) -> Response:
        return Response(TwilioAccountOutput(twilio_accounts.get_twilio_account(account_sid)).data)

    @extend_schema(
        operation_id="twilio_accounts_update", request=TwilioAccountUpdateInput, responses=TwilioAccountOutput
    )
    @api_errors("twilio_account_not_found")
    def patch(self, request: Request, account_sid: str) -> Response:
        twilio_account = twilio_accounts.get_twilio_account(account_sid)
        data = TwilioAccountUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            TwilioAccountOutput(
                twilio_accounts.update_twilio_account(twilio_account=twilio_account, **data.validated_data)
            ).data
        )

    @extend_schema(operation_id="twilio_accounts_delete", responses={200: TwilioAccountDeletedOutput})
    @api_errors("twilio_account_not_found", "twilio_account_has_phone_numbers")
    def delete(self, request: Request, account_sid: str) -> Response:
        twilio_accounts.delete_twilio_account(twilio_account=twilio_accounts.get_twilio_account(account_sid))
        return Response(TwilioAccountDeletedOutput({"account_sid": account_sid}).data)


class TwilioAccountCredentialsApi(APIView):
    @extend_schema(
        operation_id="twilio_accounts_rotate_credentials",
        request=TwilioCredentialsInput,
        responses=TwilioAccountOutput,
        description="Store the account's new auth token, for all its numbers at once (after a rotation "
        "in the Twilio console). Twilio is asked first: a token it refuses is "
        "`twilio_invalid_credentials` and nothing changes.",
    )
    @api_errors("twilio_account_not_found", "twilio_invalid_credentials", "provider_unavailable")
    def post(self, request: Request, account_sid: str) -> Response:
        twilio_account = twilio_accounts.get_twilio_account(account_sid)
        data = TwilioCredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            TwilioAccountOutput(
                twilio_accounts.rotate_credentials(twilio_account=twilio_account, **data.validated_data)
            ).data
        )
