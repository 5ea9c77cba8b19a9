"""Operator repairs over the API: reset to an earlier task, skip an active task, migrate to
another version (or only plan it). The same services as the admin's instance page."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.services import migrate_instance, plan_migration, reset_instance, skip_task

from .instances import OPERATOR_RESPONSES as RESPONSES
from .instances import instance_response


class ResetSerializer(serializers.Serializer):
    element_id = serializers.CharField(
        max_length=255,
        trim_whitespace=False,
        help_text=(
            "A task the instance has completed; it runs again and the work after it is undone."
        ),
    )


class SkipSerializer(serializers.Serializer):
    task_id = serializers.UUIDField(help_text="The workflow engine's id of an active task.")
    variables = serializers.DictField(
        required=False, default=dict, help_text="Merged into the task's data as its result."
    )


class MigrateSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=2_147_483_647)
    dry_run = serializers.BooleanField(default=False)


class MigrationPlanSerializer(serializers.Serializer):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.CharField())
    tokens = serializers.ListField(child=serializers.DictField())
    blocking = serializers.ListField(child=serializers.CharField())
    possible = serializers.BooleanField()


class InstanceResetView(APIView):
    @extend_schema(
        summary="Reset an instance to an earlier task (operators)",
        request=ResetSerializer,
        responses=RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        body = ResetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reset_instance(
            instance_id=pk, actor=request.user, element_id=body.validated_data["element_id"]
        )
        return instance_response(pk)


class InstanceSkipView(APIView):
    @extend_schema(
        summary="Complete an active task without running it (operators)",
        request=SkipSerializer,
        responses=RESPONSES,
    )
    def post(self, request: Request, pk: str) -> Response:
        body = SkipSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        skip_task(
            instance_id=pk,
            actor=request.user,
            task_id=body.validated_data["task_id"],
            variables=body.validated_data["variables"],
        )
        return instance_response(pk)


class InstanceMigrateView(APIView):
    @extend_schema(
        summary="Migrate an instance to another version, or plan it with dry_run "
        "(operators); 409 with the plan when an active task has no "
        "counterpart",
        request=MigrateSerializer,
        responses={**RESPONSES, 200: MigrationPlanSerializer},
    )
    def post(self, request: Request, pk: str) -> Response:
        body = MigrateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        service = plan_migration if body.validated_data["dry_run"] else migrate_instance
        plan = service(instance_id=pk, actor=request.user, version=body.validated_data["version"])
        return Response(MigrationPlanSerializer(plan.as_dict()).data)
