from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors
from engine.services import (
    cancel_instance,
    resume_instance,
    retry_instance,
    set_variables,
    suspend_instance,
    terminate_instance,
)

from ..schema import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from ..serializers import (
    InstanceEventSerializer,
    InstanceFilterSerializer,
    InstanceSerializer,
    ReasonSerializer,
    VariablesSerializer,
    query_filters,
)


@extend_schema(
    summary="Instances the caller may see",
    parameters=[InstanceFilterSerializer],
    responses={200: InstanceSerializer(many=True), 401: UNAUTHENTICATED},
)
class InstanceListView(generics.ListAPIView):
    serializer_class = InstanceSerializer

    def get_queryset(self) -> Any:
        filters = query_filters(InstanceFilterSerializer, self.request.query_params)
        return selectors.visible_instances(self.request.user, **filters)


@extend_schema(
    summary="An instance: status, variables, open tasks, jobs, incident",
    responses={200: InstanceSerializer, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
)
class InstanceDetailView(generics.RetrieveAPIView):
    serializer_class = InstanceSerializer

    def get_object(self) -> Any:
        return selectors.instance_detail_for(self.kwargs["pk"], self.request.user)


@extend_schema(
    summary="The audit trail of an instance, oldest first",
    responses={
        200: InstanceEventSerializer(many=True),
        401: UNAUTHENTICATED,
        403: FORBIDDEN,
        404: NOT_FOUND,
    },
)
class InstanceHistoryView(generics.ListAPIView):
    serializer_class = InstanceEventSerializer

    def get_queryset(self) -> Any:
        instance = selectors.instance_detail_for(self.kwargs["pk"], self.request.user)
        return selectors.instance_history(instance)


OPERATOR_RESPONSES = {
    200: InstanceSerializer,
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: CONFLICT,
}


def instance_response(pk: str) -> Response:
    return Response(InstanceSerializer(selectors.instance_detail(pk)).data)


def _reason(request: Request) -> str:
    body = ReasonSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return str(body.validated_data.get("reason") or "")


class InstanceSuspendView(APIView):
    @extend_schema(
        summary="Suspend an instance (operators)",
        request=ReasonSerializer,
        responses=OPERATOR_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        suspend_instance(instance_id=pk, actor=request.user, reason=_reason(request))
        return instance_response(pk)


class InstanceResumeView(APIView):
    @extend_schema(
        summary="Resume a suspended instance (operators)",
        request=None,
        responses=OPERATOR_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        resume_instance(instance_id=pk, actor=request.user)
        return instance_response(pk)


class InstanceTerminateView(APIView):
    @extend_schema(
        summary="Terminate an instance (operators); a reason is required",
        request=ReasonSerializer,
        responses=OPERATOR_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        terminate_instance(instance_id=pk, actor=request.user, reason=_reason(request))
        return instance_response(pk)


class InstanceCancelView(APIView):
    @extend_schema(
        summary="Cancel an instance with compensation (operators); a reason is required",
        description="Cancels the open tasks and jobs and runs the compensation handlers of "
        "the activities that completed, latest first, as ordinary work (service handlers are "
        "jobs with retries and incidents). The instance is `terminated` once the last handler "
        "finished, at once when nothing needs compensating. 409 when the instance has "
        "finished, is suspended, or is already being cancelled.",
        request=ReasonSerializer,
        responses=OPERATOR_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        cancel_instance(instance_id=pk, actor=request.user, reason=_reason(request))
        return instance_response(pk)


class InstanceRetryView(APIView):
    @extend_schema(
        summary="Run the failed jobs and tasks of an instance in incident again "
        "(operators), optionally after merging fixed variables",
        request=VariablesSerializer,
        responses=OPERATOR_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        body = VariablesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        retry_instance(
            instance_id=pk, actor=request.user, variables=body.validated_data["variables"]
        )
        return instance_response(pk)


class InstanceVariablesView(APIView):
    @extend_schema(
        summary="Merge variables into an instance (operators, audited)",
        request=VariablesSerializer,
        responses=OPERATOR_RESPONSES,
    )
    def patch(self, request: Request, pk: str) -> Response:
        body = VariablesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        variables = body.validated_data["variables"]
        set_variables(instance_id=pk, actor=request.user, variables=variables)
        return instance_response(pk)
