"""Named connections and their health (engine/services/connections.py): operators create,
change and delete them and operate their circuit breakers; designers may list them."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.models import Connection
from engine.selectors.connections import (
    connection_list,
    health_of,
    visible_connection,
    waiting_jobs,
)
from engine.services import connections as service

from ..schema import BAD_REQUEST, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from ..serializers import StrictCharField

ERRORS: dict[int, Any] = {400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN}


# Text fields: a number or a boolean there is refused, not turned into text.
TEXT_FIELDS = (
    "name",
    "base_url",
    "auth",
    "username",
    "secret_name",
    "api_key_header",
    "token_url",
    "scope",
    "rate_period",
)


def _count(**options: Any) -> serializers.IntegerField:
    """A limit: empty for none (its bounds are the service's: services.connections.BOUNDS)."""
    return serializers.IntegerField(allow_null=True, required=False, **options)


class ConnectionSerializer(serializers.ModelSerializer):
    """The shape of a connection (types); every bound and rule is the service's, so that the
    admin and the API refuse the same values with the same messages."""

    waiting_jobs = serializers.SerializerMethodField()
    default_headers = serializers.DictField(child=StrictCharField(allow_blank=True), required=False)
    timeout_seconds = serializers.FloatField(required=False)
    connect_timeout_seconds = serializers.FloatField(allow_null=True, required=False)
    rate_limit = _count(help_text="Calls per rate_period; empty for no rate limit.")
    max_concurrent = _count(help_text="Calls at once; empty for no cap.")
    breaker_failures = _count(help_text="Failures in a row that open the breaker.")
    breaker_error_rate = _count(help_text="Percent of failed calls that opens the breaker.")
    breaker_window_seconds = serializers.IntegerField(required=False)
    breaker_min_calls = serializers.IntegerField(required=False)
    breaker_cooldown_seconds = serializers.FloatField(required=False)

    class Meta:
        model = Connection
        fields = [*service.EDITABLE_FIELDS, "waiting_jobs", "created_at", "updated_at"]
        read_only_fields = ["waiting_jobs", "created_at", "updated_at"]
        # The service checks the name's uniqueness with the other rules (one 400).
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            wrong = [
                name for name in TEXT_FIELDS if name in data and not isinstance(data[name], str)
            ]
            if wrong:
                raise serializers.ValidationError({name: ["Must be text."] for name in wrong})
        return super().to_internal_value(data)

    def get_waiting_jobs(self, row: Connection) -> int:
        waiting: dict[str, dict[str, int]] = self.context.get("waiting") or {}
        return sum(waiting.get(row.name, {}).values())


class BreakerActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=sorted(service.BREAKER_ACTIONS))


def _body(request: Request, *, partial: bool) -> dict[str, Any]:
    body = ConnectionSerializer(data=request.data, partial=partial)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _shown(row: Connection) -> dict[str, Any]:
    waiting = waiting_jobs([row.name])
    return dict(ConnectionSerializer(row, context={"waiting": waiting}).data)


class ConnectionListView(APIView):
    @extend_schema(
        summary="List named connections (operators and designers)",
        responses={200: ConnectionSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        rows = connection_list(request.user)
        waiting = waiting_jobs([row.name for row in rows])
        return Response(ConnectionSerializer(rows, many=True, context={"waiting": waiting}).data)

    @extend_schema(
        summary="Create a named connection (operators)",
        request=ConnectionSerializer,
        responses={201: ConnectionSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        row = service.create_connection(actor=request.user, values=_body(request, partial=False))
        return Response(_shown(row), status=status.HTTP_201_CREATED)


class ConnectionDetailView(APIView):
    @extend_schema(
        summary="A named connection",
        responses={200: ConnectionSerializer, **ERRORS, 404: NOT_FOUND},
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(_shown(visible_connection(request.user, name)))

    @extend_schema(
        summary="Change a named connection (operators)",
        request=ConnectionSerializer,
        responses={200: ConnectionSerializer, **ERRORS, 404: NOT_FOUND},
    )
    def patch(self, request: Request, name: str) -> Response:
        values = _body(request, partial=True)
        row = service.update_connection(actor=request.user, name=name, values=values)
        return Response(_shown(row))

    @extend_schema(
        summary="Delete a named connection (operators)",
        responses={204: None, **ERRORS, 404: NOT_FOUND},
    )
    def delete(self, request: Request, name: str) -> Response:
        service.delete_connection(actor=request.user, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionHealthView(APIView):
    @extend_schema(
        summary="A connection's breaker, rate, slots and waiting jobs (operators)",
        responses={
            200: OpenApiResponse(description="Breaker state, current rate, waiting jobs."),
            **ERRORS,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(health_of(request.user, name))


class ConnectionBreakerView(APIView):
    @extend_schema(
        summary="Hold a connection's circuit breaker open, close it, or reset its limits "
        "(operators; audited)",
        request=BreakerActionSerializer,
        responses={
            200: OpenApiResponse(description="The connection's health after the action."),
            **ERRORS,
            404: NOT_FOUND,
        },
    )
    def post(self, request: Request, name: str) -> Response:
        body = BreakerActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service.operate_breaker(actor=request.user, name=name, action=body.validated_data["action"])
        return Response(health_of(request.user, name))
