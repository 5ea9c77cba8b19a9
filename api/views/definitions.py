from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors as engine_selectors
from engine.services import start_instance
from processes import selectors

from ..idempotency import IDEMPOTENCY_PARAMETER, idempotent
from ..schema import BAD_REQUEST, NOT_FOUND, UNAUTHENTICATED, UNPROCESSABLE
from ..serializers import DefinitionSerializer, InstanceSerializer, StartInstanceSerializer

VERSION_PARAMETER = OpenApiParameter(
    "version", OpenApiTypes.INT, description="A version number; the latest when left out."
)


@extend_schema(
    summary="Process definitions (latest version of each key)",
    parameters=[
        OpenApiParameter("key", str, description="Part of the process key."),
        OpenApiParameter("name", str, description="Part of the process name."),
    ],
    responses={200: DefinitionSerializer(many=True), 401: UNAUTHENTICATED},
)
class DefinitionListView(generics.ListAPIView):
    serializer_class = DefinitionSerializer

    def get_queryset(self) -> Any:
        params = self.request.query_params
        return selectors.latest_definitions(key=params.get("key"), name=params.get("name"))


@extend_schema(summary="The latest version of a process definition",
               responses={200: DefinitionSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND})
class DefinitionDetailView(generics.RetrieveAPIView):
    serializer_class = DefinitionSerializer

    def get_object(self) -> Any:
        return selectors.definition(self.kwargs["key"])


@extend_schema(summary="Every version of a process definition, newest first",
               responses={200: DefinitionSerializer(many=True), 401: UNAUTHENTICATED,
                          404: NOT_FOUND})
class DefinitionVersionsView(generics.ListAPIView):
    serializer_class = DefinitionSerializer

    def get_queryset(self) -> Any:
        return selectors.definition_versions(self.kwargs["key"])


def _version(request: Request) -> int | None:
    from rest_framework.exceptions import ValidationError

    raw = request.query_params.get("version")
    if raw in (None, ""):
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({"version": "A positive whole number."})
    return int(raw)


class DefinitionXmlView(APIView):
    @extend_schema(
        summary="The BPMN XML of a process definition",
        parameters=[VERSION_PARAMETER],
        responses={(200, "application/xml"): OpenApiTypes.STR, 400: BAD_REQUEST,
                   401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, key: str) -> HttpResponse:
        definition = selectors.definition(key, _version(request))
        response = HttpResponse(definition.bpmn_xml, content_type="application/xml")
        response["Content-Disposition"] = f'inline; filename="{definition.file_name}"'
        return response


class StartInstanceView(APIView):
    @extend_schema(
        operation_id="start_instance",
        summary="Start an instance of a process",
        request=StartInstanceSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: InstanceSerializer, 400: BAD_REQUEST, 401: UNAUTHENTICATED, 404: NOT_FOUND,
                   422: UNPROCESSABLE},
    )
    @idempotent
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
