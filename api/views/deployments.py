from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from processes.services import DeploymentResult, deploy, validate_files
from processes.validation import UploadedFile

from ..parsers import JSONWithoutNulParser
from ..schema import BAD_REQUEST, FORBIDDEN, UNAUTHENTICATED
from ..serializers import (
    DeploymentJsonSerializer,
    DeploymentResultSerializer,
    DeploymentUploadSerializer,
    ValidationResultSerializer,
)

UPLOAD_REQUEST = {
    "multipart/form-data": DeploymentUploadSerializer,
    "application/json": DeploymentJsonSerializer,
}


def _uploaded_files(request: Request) -> tuple[str, list[UploadedFile]]:
    if request.content_type.startswith("application/json"):
        body = DeploymentJsonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name") or ""
        file_name = name if name.endswith(".bpmn") else f"{name or 'diagram'}.bpmn"
        return name, [UploadedFile(file_name, body.validated_data["bpmn_xml"].encode("utf-8"))]
    form = DeploymentUploadSerializer(
        data={"name": request.POST.get("name", ""), "files": request.FILES.getlist("files")}
    )
    form.is_valid(raise_exception=True)
    files = [UploadedFile(f.name, f.read()) for f in form.validated_data["files"]]
    return form.validated_data.get("name") or "", files


def _deployment_body(result: DeploymentResult) -> dict[str, Any]:
    deployment = result.deployment
    return DeploymentResultSerializer(
        {
            "id": deployment.pk if deployment else None,
            "name": deployment.name if deployment else None,
            "created": bool(result.created),
            "definitions": result.definitions,
            "warnings": [w.as_dict() for w in result.warnings],
        }
    ).data


class DeploymentCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONWithoutNulParser]

    @extend_schema(
        operation_id="deploy",
        summary="Deploy BPMN/DMN/JSON files (designers)",
        request=UPLOAD_REQUEST,
        responses={
            201: DeploymentResultSerializer,
            200: DeploymentResultSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
        description="201 when a new version was created; 200 when every process was unchanged.",
    )
    def post(self, request: Request) -> Response:
        name, files = _uploaded_files(request)
        result = deploy(name=name, files=files, actor=request.user)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(_deployment_body(result), status=code)


class DeploymentValidateView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONWithoutNulParser]

    @extend_schema(
        operation_id="validate_deployment",
        summary="Validate files without deploying them",
        request=UPLOAD_REQUEST,
        responses={200: ValidationResultSerializer, 400: BAD_REQUEST, 401: UNAUTHENTICATED},
    )
    def post(self, request: Request) -> Response:
        _, files = _uploaded_files(request)
        parsed = validate_files(files)
        processes = [{"key": p.key, "name": p.name, "file": p.file_name} for p in parsed.processes]
        return Response({"valid": True, "dialect": parsed.dialect, "processes": processes})
