"""Timer start events as schedules (engine/services/schedules.py): operators list them,
pause and resume them, start an instance now, and change a schedule without deploying."""

from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors
from engine.models import StartTrigger
from engine.permissions import is_operator
from engine.selectors.schedules import schedule_list
from engine.services import schedules as service

from ..schema import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from ..serializers import InstanceSerializer, StrictCharField, TextField, query_filters


class ScheduleSerializer(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.key", read_only=True)
    version = serializers.IntegerField(source="definition.version", read_only=True)
    expression = serializers.CharField(source="timer_expression", read_only=True)
    current = serializers.SerializerMethodField(
        help_text="Whether it belongs to the latest version (only those start instances)."
    )

    class Meta:
        model = StartTrigger
        fields = [
            "id",
            "definition",
            "version",
            "element_id",
            "expression",
            "active",
            "paused",
            "current",
            "next_due_at",
            "cycles_left",
            "last_started_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_current(self, row: StartTrigger) -> bool:
        return not getattr(row, "superseded", False)


class ScheduleFilterSerializer(serializers.Serializer):
    definition = TextField(required=False, help_text="A process key.")
    current = serializers.BooleanField(
        required=False, default=False, help_text="Only the latest versions' schedules."
    )


class ScheduleChangeSerializer(serializers.Serializer):
    expression = StrictCharField(
        max_length=service.MAX_EXPRESSION,
        help_text="ISO 8601 date, duration or repeating interval (R/PT1H), or a cron expression.",
    )


def require_operator(request: Request) -> None:
    if not is_operator(request.user):
        raise PermissionDenied("Only operators may see and change schedules.")


def _shown(pk: int) -> Response:
    return Response(ScheduleSerializer(schedule_list().get(pk=pk)).data)


ACTION_RESPONSES: dict[int, Any] = {
    200: ScheduleSerializer,
    400: BAD_REQUEST,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: CONFLICT,
}


@extend_schema(
    summary="Timer start events as schedules (operators)",
    parameters=[ScheduleFilterSerializer],
    responses={200: ScheduleSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
)
class ScheduleListView(generics.ListAPIView):
    serializer_class = ScheduleSerializer

    def get_queryset(self) -> Any:
        require_operator(self.request)
        filters = query_filters(ScheduleFilterSerializer, self.request.query_params)
        return schedule_list(
            definition=filters.get("definition", ""), current_only=filters.get("current", False)
        )


class ScheduleDetailView(APIView):
    @extend_schema(summary="A schedule (operators)", responses=ACTION_RESPONSES)
    def get(self, request: Request, pk: int) -> Response:
        require_operator(request)
        row = schedule_list().filter(pk=pk).first()
        if row is None:
            raise NotFound(f"There is no schedule {pk}.")
        return Response(ScheduleSerializer(row).data)

    @extend_schema(
        summary="Change the schedule of a deployed version (operators; audited)",
        request=ScheduleChangeSerializer,
        responses=ACTION_RESPONSES,
    )
    def patch(self, request: Request, pk: int) -> Response:
        body = ScheduleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service.change_schedule(
            trigger_id=pk, actor=request.user, expression=body.validated_data["expression"]
        )
        return _shown(pk)


class SchedulePauseView(APIView):
    @extend_schema(summary="Pause a schedule (operators)", request=None, responses=ACTION_RESPONSES)
    def post(self, request: Request, pk: int) -> Response:
        service.pause_schedule(trigger_id=pk, actor=request.user)
        return _shown(pk)


class ScheduleResumeView(APIView):
    @extend_schema(
        summary="Resume a schedule (operators)", request=None, responses=ACTION_RESPONSES
    )
    def post(self, request: Request, pk: int) -> Response:
        service.resume_schedule(trigger_id=pk, actor=request.user)
        return _shown(pk)


class ScheduleRunView(APIView):
    @extend_schema(
        summary="Start an instance at the timer start event now (operators; audited)",
        request=None,
        responses={**ACTION_RESPONSES, 201: InstanceSerializer, 200: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        instance = service.run_schedule_now(trigger_id=pk, actor=request.user)
        detail = selectors.instance_detail_for(instance.pk, request.user)
        return Response(InstanceSerializer(detail).data, status=status.HTTP_201_CREATED)
