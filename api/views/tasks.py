from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors
from engine.models import HumanTask
from engine.services import claim_task, complete_human_task, unclaim_task
from engine.services.operation_keys import KeyedOperation

from ..idempotency import IDEMPOTENCY_PARAMETER, idempotent
from ..pagination import KeysetPagination
from ..schema import (
    BAD_REQUEST,
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNPROCESSABLE,
)
from ..serializers import (
    CompleteTaskSerializer,
    TaskFilterSerializer,
    TaskSerializer,
    query_filters,
)


@extend_schema(
    summary="Tasks the caller can act on (or completed)",
    parameters=[TaskFilterSerializer],
    responses={200: TaskSerializer(many=True), 401: UNAUTHENTICATED},
)
class TaskListView(generics.ListAPIView):
    serializer_class = TaskSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        filters = query_filters(TaskFilterSerializer, self.request.query_params)
        instance = filters.get("instance")
        return selectors.tasks_for_user(
            self.request.user,
            mine=filters["mine"],
            group=filters.get("group"),
            instance=str(instance) if instance else None,
            status=filters.get("status"),
        )

    def paginate_queryset(self, queryset: Any) -> list[Any] | None:
        page = super().paginate_queryset(queryset)
        return None if page is None else selectors.with_listed_instances(page)


@extend_schema(
    summary="A task, with its form",
    responses={200: TaskSerializer, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
)
class TaskDetailView(generics.RetrieveAPIView):
    serializer_class = TaskSerializer

    def get_object(self) -> HumanTask:
        return selectors.task_detail_for(self.kwargs["pk"], self.request.user)


TASK_RESPONSES = {
    200: TaskSerializer,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: CONFLICT,
}


def _task_response(task: HumanTask) -> Response:
    """The task as the service left it (its instance and definition read with it)."""
    return Response(TaskSerializer(task).data)


class TaskClaimView(APIView):
    @extend_schema(summary="Claim a task", request=None, responses=TASK_RESPONSES)
    def post(self, request: Request, pk: str) -> Response:
        return _task_response(claim_task(task_id=pk, user=request.user))


class TaskUnclaimView(APIView):
    @extend_schema(
        summary="Give a claimed task back to its candidates", request=None, responses=TASK_RESPONSES
    )
    def post(self, request: Request, pk: str) -> Response:
        return _task_response(unclaim_task(task_id=pk, user=request.user))


class TaskCompleteView(APIView):
    @extend_schema(
        summary="Complete a task with its form's variables",
        request=CompleteTaskSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={**TASK_RESPONSES, 400: BAD_REQUEST, 422: UNPROCESSABLE},
    )
    @idempotent
    def post(
        self, request: Request, pk: str, operation_key: KeyedOperation | None = None
    ) -> Response:
        body = CompleteTaskSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = complete_human_task(
            task_id=pk,
            user=request.user,
            variables=body.validated_data["variables"],
            operation_key=operation_key,
        )
        return _task_response(task)
