"""External tasks: workers outside Baton fetch, lock and complete service tasks whose topic
or job type names no Baton connector (engine/services/external_tasks.py)."""

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.services import external_tasks as service

from ..external_task_serializers import (
    CompleteExternalTaskSerializer,
    ExtendLockSerializer,
    ExternalTaskBpmnErrorSerializer,
    ExternalTaskFailureSerializer,
    FetchAndLockSerializer,
    LockedTaskSerializer,
    LockExpirationSerializer,
    WorkerSerializer,
)
from ..schema import BAD_REQUEST, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED, problem

HELD_CONFLICT = problem(
    "The task is not locked by this worker (its lock ran out and another worker fetched it, "
    "or it is done), or its instance is suspended."
)
TASK_RESPONSES: dict[int, Any] = {
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: HELD_CONFLICT,
}


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


class FetchAndLockView(APIView):
    @extend_schema(
        operation_id="fetch_and_lock_external_tasks",
        summary="Fetch and lock external tasks of some topics for a worker",
        description="Tasks whose lock ran out are fetched again. With async_response_timeout, "
        "the request waits up to that long (at most 30 s) for a task when none is there.",
        request=FetchAndLockSerializer,
        responses={
            200: OpenApiResponse(LockedTaskSerializer(many=True), "The locked tasks (maybe none)."),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    )
    def post(self, request: Request) -> Response:
        body = _valid(FetchAndLockSerializer, request.data)
        topics = [service.TopicRequest(**topic) for topic in body.pop("topics")]
        locked = service.fetch_and_lock(actor=request.user, topics=topics, **body)
        return Response(LockedTaskSerializer([asdict(task) for task in locked], many=True).data)


class CompleteView(APIView):
    @extend_schema(
        operation_id="complete_external_task",
        summary="Complete an external task with variables",
        request=CompleteExternalTaskSerializer,
        responses={204: None, **TASK_RESPONSES},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = _valid(CompleteExternalTaskSerializer, request.data)
        service.complete_external_task(actor=request.user, task_id=pk, **body)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FailureView(APIView):
    @extend_schema(
        operation_id="fail_external_task",
        summary="Report a failure: retried later, or an incident when no retries are left",
        request=ExternalTaskFailureSerializer,
        responses={204: None, **TASK_RESPONSES},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = _valid(ExternalTaskFailureSerializer, request.data)
        service.handle_external_task_failure(actor=request.user, task_id=pk, **body)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BpmnErrorView(APIView):
    @extend_schema(
        operation_id="throw_external_task_bpmn_error",
        summary="Throw a BPMN error from an external task (caught by a boundary event)",
        request=ExternalTaskBpmnErrorSerializer,
        responses={204: None, **TASK_RESPONSES},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = _valid(ExternalTaskBpmnErrorSerializer, request.data)
        service.handle_external_task_bpmn_error(actor=request.user, task_id=pk, **body)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExtendLockView(APIView):
    @extend_schema(
        operation_id="extend_external_task_lock",
        summary="Extend the lock of an external task the worker holds",
        request=ExtendLockSerializer,
        responses={200: LockExpirationSerializer, **TASK_RESPONSES},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = _valid(ExtendLockSerializer, request.data)
        until = service.extend_external_task_lock(actor=request.user, task_id=pk, **body)
        return Response(LockExpirationSerializer({"lock_expiration_time": until}).data)


class UnlockView(APIView):
    @extend_schema(
        operation_id="unlock_external_task",
        summary="Give an external task back to the queue undone",
        request=WorkerSerializer,
        responses={204: None, **TASK_RESPONSES},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = _valid(WorkerSerializer, request.data)
        service.unlock_external_task(actor=request.user, task_id=pk, **body)
        return Response(status=status.HTTP_204_NO_CONTENT)
