"""Service jobs and queues for operators: the filtered job list (cursor pagination), an
operator's requeue, cancel and due-time change (engine/services/job_operations.py), and the
depth of each Celery queue."""

from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.models import ServiceJob
from engine.permissions import is_operator
from engine.selectors.jobs import job_list, queue_depths
from engine.services import job_operations

from ..schema import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from ..serializers import TextField, query_filters

STATUSES = [value for value, _ in ServiceJob.Status.choices]
_ONE_STATUS = f"(?:{'|'.join(STATUSES)})"
STATUS_LIST = rf"^{_ONE_STATUS}(?:,{_ONE_STATUS})*$"


def require_operator(request: Request) -> None:
    if not is_operator(request.user):
        raise PermissionDenied("Only operators may see and change jobs and queues.")


class OperatorJobSerializer(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", read_only=True)
    definition = serializers.CharField(source="instance.definition.key", read_only=True)
    connection = serializers.SerializerMethodField()
    note = serializers.CharField(source="queue_note", read_only=True)

    class Meta:
        model = ServiceJob
        fields = [
            "id",
            "instance",
            "definition",
            "element_id",
            "kind",
            "connector",
            "connection",
            "status",
            "attempt",
            "max_attempts",
            "next_attempt_at",
            "started_at",
            "last_error",
            "error_code",
            "worker_id",
            "locked_until",
            "waiting_on",
            "note",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_connection(self, job: ServiceJob) -> str | None:
        name = job.parameters.get("connection") if isinstance(job.parameters, dict) else None
        return name if isinstance(name, str) else None


class JobFilterSerializer(serializers.Serializer):
    status = serializers.RegexField(
        STATUS_LIST,
        required=False,
        allow_blank=True,
        help_text=f"One status or several, comma-separated: {', '.join(STATUSES)}.",
        error_messages={"invalid": f"Statuses are {', '.join(STATUSES)}, comma-separated."},
    )
    connector = TextField(required=False, help_text="The connector name or external topic.")
    connection = TextField(required=False, help_text="The named connection the job calls.")
    instance = serializers.UUIDField(required=False)
    kind = serializers.ChoiceField(choices=ServiceJob.Kind.choices, required=False)
    element_id = TextField(required=False)
    error = TextField(required=False, help_text="Text the last error contains (any case).")

    def validate_status(self, value: str) -> list[str]:
        return [part for part in value.split(",") if part]


class JobCursorPagination(CursorPagination):
    """Keyset pagination, newest first: pages stay stable while jobs are written."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Any) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise serializers.ValidationError(
                {self.page_size_query_param: f"A number from 1 to {self.max_page_size}."}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


@extend_schema(
    summary="Service jobs (operators), newest first, with filters",
    parameters=[JobFilterSerializer],
    responses={
        200: OperatorJobSerializer(many=True),
        400: BAD_REQUEST,
        401: UNAUTHENTICATED,
        403: FORBIDDEN,
    },
)
class JobListView(generics.ListAPIView):
    serializer_class = OperatorJobSerializer
    pagination_class = JobCursorPagination

    def get_queryset(self) -> Any:
        require_operator(self.request)
        return job_list(**query_filters(JobFilterSerializer, self.request.query_params))


class JobCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class JobDueSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField(
        allow_null=True, help_text="When to try the job next; null for now."
    )


ACTION_RESPONSES: dict[int, Any] = {
    200: OperatorJobSerializer,
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: CONFLICT,
}


def _shown(job_id: Any) -> Response:
    return Response(OperatorJobSerializer(job_list().get(pk=job_id)).data)


class JobRequeueView(APIView):
    @extend_schema(
        summary="Send a pending or dead job again now (operators)",
        request=None,
        responses=ACTION_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        job_operations.requeue_job(job_id=pk, actor=request.user)
        return _shown(pk)


class JobCancelView(APIView):
    @extend_schema(
        summary="Cancel a job: it becomes dead, its instance an incident (operators)",
        description=(
            "A pending, running or waiting job stops; its instance goes into incident "
            "'Cancelled by operator' (error code CANCELLED_BY_OPERATOR). Requeue the job or "
            "retry the instance to send it again, skip its task, or terminate the instance."
        ),
        request=JobCancelSerializer,
        responses=ACTION_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        body = JobCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job_operations.cancel_job(
            job_id=pk, actor=request.user, reason=body.validated_data.get("reason", "")
        )
        return _shown(pk)


class JobDueView(APIView):
    @extend_schema(
        summary="Move a pending job's next attempt (operators)",
        request=JobDueSerializer,
        responses=ACTION_RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        body = JobDueSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job_operations.set_job_due(
            job_id=pk, actor=request.user, due_at=body.validated_data["due_at"]
        )
        return _shown(pk)


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=["jobs", "events"])
    messages = serializers.IntegerField(
        allow_null=True, help_text="Messages waiting in the broker; null when it cannot be asked."
    )
    oldest_age_seconds = serializers.FloatField(allow_null=True)
    age_source = serializers.ChoiceField(choices=["broker", "database"])
    pending_jobs = serializers.IntegerField(required=False)
    running_jobs = serializers.IntegerField(required=False)
    broker_error = serializers.CharField(required=False)


class QueueListView(APIView):
    @extend_schema(
        summary="Depth and oldest message age of each Celery queue (operators)",
        responses={200: QueueSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        require_operator(request)
        return Response(QueueSerializer(queue_depths(), many=True).data)
