"""Thin API views: parse the request, call one service, render the result."""
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors as engine_selectors
from engine.services import complete_human_task, retry_instance, start_instance
from processes.services import DeploymentResult, deploy
from processes.validation import UploadedFile

from .serializers import (
    CompleteTaskSerializer,
    DeploymentJsonSerializer,
    DeploymentResultSerializer,
    DeploymentUploadSerializer,
    InstanceSerializer,
    StartInstanceSerializer,
    TaskSerializer,
)


def _uploaded_files(request: Request) -> tuple[str, list[UploadedFile]]:
    if request.content_type.startswith("application/json"):
        body = DeploymentJsonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name") or ""
        file_name = f"{name or 'diagram'}.bpmn" if not name.endswith(".bpmn") else name
        return name, [UploadedFile(file_name, body.validated_data["bpmn_xml"].encode("utf-8"))]
    form = DeploymentUploadSerializer(
        data={"name": request.POST.get("name", ""), "files": request.FILES.getlist("files")}
    )
    form.is_valid(raise_exception=True)
    files = [UploadedFile(f.name, f.read()) for f in form.validated_data["files"]]
    return form.validated_data.get("name") or "", files


def _deployment_body(result: DeploymentResult) -> dict[str, Any]:
    deployment = result.deployment
    return DeploymentResultSerializer({
        "id": deployment.pk if deployment else None,
        "name": deployment.name if deployment else None,
        "created": bool(result.created),
        "definitions": result.definitions,
    }).data


class DeploymentCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=DeploymentJsonSerializer, responses={201: DeploymentResultSerializer})
    def post(self, request: Request) -> Response:
        name, files = _uploaded_files(request)
        result = deploy(name=name, files=files, actor=request.user)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(_deployment_body(result), status=code)


class StartInstanceView(APIView):
    @extend_schema(request=StartInstanceSerializer, responses={201: InstanceSerializer})
    def post(self, request: Request, key: str) -> Response:
        body = StartInstanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = start_instance(
            key=key,
            variables=body.validated_data["variables"],
            business_key=body.validated_data["business_key"],
            version=body.validated_data["version"],
            actor=request.user,
        )
        detail = engine_selectors.instance_detail(instance.pk)
        return Response(InstanceSerializer(detail).data, status=status.HTTP_201_CREATED)


class InstanceDetailView(generics.RetrieveAPIView):
    serializer_class = InstanceSerializer

    def get_object(self) -> Any:
        return engine_selectors.instance_detail_for(self.kwargs["pk"], self.request.user)


class InstanceRetryView(APIView):
    @extend_schema(request=None, responses={200: InstanceSerializer})
    def post(self, request: Request, pk: str) -> Response:
        retry_instance(instance_id=pk, actor=request.user)
        return Response(InstanceSerializer(engine_selectors.instance_detail(pk)).data)


class TaskListView(generics.ListAPIView):
    serializer_class = TaskSerializer

    def get_queryset(self) -> Any:
        params = self.request.query_params
        return engine_selectors.tasks_for_user(
            self.request.user,
            mine=params.get("mine") in {"1", "true"},
            group=params.get("group") or None,
            instance=params.get("instance") or None,
            status=params.get("status") or None,
        )


class TaskCompleteView(APIView):
    @extend_schema(request=CompleteTaskSerializer, responses={200: TaskSerializer})
    def post(self, request: Request, pk: str) -> Response:
        body = CompleteTaskSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = complete_human_task(
            task_id=pk, user=request.user, variables=body.validated_data["variables"]
        )
        return Response(TaskSerializer(engine_selectors.task_detail(task.pk)).data)
