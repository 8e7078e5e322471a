"""/v1/customers."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers import services
from customers.models import Customer
from customers.serializers import CustomerInput, CustomerOutput, render_customer
from nixflex.pagination import paginate


class CustomerListApi(APIView):
    @extend_schema(responses=CustomerOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(paginate(request, Customer.objects.all(), render_customer))

    @extend_schema(request=CustomerInput, responses={201: CustomerOutput})
    def post(self, request: Request) -> Response:
        data = CustomerInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(render_customer(services.create_customer(**data.validated_data)), status=201)


class CustomerDetailApi(APIView):
    @extend_schema(responses=CustomerOutput)
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(render_customer(services.get_customer(customer_id)))

    @extend_schema(request=CustomerInput(partial=True), responses=CustomerOutput)
    def patch(self, request: Request, customer_id: str) -> Response:
        customer = services.get_customer(customer_id)
        data = CustomerInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(render_customer(services.update_customer(customer=customer, **data.validated_data)))

    def delete(self, request: Request, customer_id: str) -> Response:
        services.delete_customer(customer=services.get_customer(customer_id))
        return Response({"id": customer_id, "object": "customer", "deleted": True})
