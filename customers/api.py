"""/v1/customers."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers import services
from customers.models import Customer
from customers.serializers import CustomerInput, CustomerOutput
from nixflex.api import DeletedOutput, deleted, parse, render
from nixflex.openapi import api_errors
from nixflex.pagination import PageQuery, list_of, page_of

CustomerList = list_of(CustomerOutput)


class CustomerListApi(APIView):
    @extend_schema(parameters=[PageQuery], responses=CustomerList)
    def get(self, request: Request) -> Response:
        page = page_of(Customer.objects.all(), **parse(PageQuery, request.query_params))
        return Response(render(CustomerList, page))

    @extend_schema(request=CustomerInput, responses={201: CustomerOutput})
    def post(self, request: Request) -> Response:
        customer = services.create_customer(**parse(CustomerInput, request.data))
        return Response(render(CustomerOutput, customer), status=201)


class CustomerDetailApi(APIView):
    @extend_schema(responses=CustomerOutput)
    @api_errors("customer_not_found")
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(render(CustomerOutput, services.get_customer(customer_id)))

    @extend_schema(request=CustomerInput(partial=True), responses=CustomerOutput)
    @api_errors("customer_not_found")
    def patch(self, request: Request, customer_id: str) -> Response:
        customer = services.get_customer(customer_id)
        customer = services.update_customer(customer=customer, **parse(CustomerInput, request.data, partial=True))
        return Response(render(CustomerOutput, customer))

    @extend_schema(responses={200: DeletedOutput})
    @api_errors("customer_not_found")
    def delete(self, request: Request, customer_id: str) -> Response:
        services.delete_customer(customer=services.get_customer(customer_id))
        return Response(deleted("customer", customer_id))
