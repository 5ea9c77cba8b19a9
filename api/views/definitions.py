from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors as engine_selectors
from engine.services import start_instance
from engine.services.operation_keys import KeyedOperation
from processes import selectors
from processes.content_policies import diagram_download

from ..idempotency import IDEMPOTENCY_PARAMETER, idempotent
from ..schema import BAD_REQUEST, NOT_FOUND, UNAUTHENTICATED, UNPROCESSABLE
from ..serializers import (
    DefinitionFilterSerializer,
    DefinitionSerializer,
    InstanceSerializer,
    StartInstanceSerializer,
    VersionFilterSerializer,
    query_filters,
)


@extend_schema(
    summary="Process definitions (latest version of each key)",
    parameters=[DefinitionFilterSerializer],
    responses={200: DefinitionSerializer(many=True), 401: UNAUTHENTICATED},
)
class DefinitionListView(generics.ListAPIView):
    serializer_class = DefinitionSerializer

    def get_queryset(self) -> Any:
        filters = query_filters(DefinitionFilterSerializer, self.request.query_params)
        return selectors.latest_definitions(**filters)


@extend_schema(
    summary="The latest version of a process definition",
    responses={200: DefinitionSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
)
class DefinitionDetailView(generics.RetrieveAPIView):
    serializer_class = DefinitionSerializer

    def get_object(self) -> Any:
        return selectors.definition(self.kwargs["key"])


@extend_schema(
    summary="Every version of a process definition, newest first",
    responses={200: DefinitionSerializer(many=True), 401: UNAUTHENTICATED, 404: NOT_FOUND},
)
class DefinitionVersionsView(generics.ListAPIView):
    serializer_class = DefinitionSerializer

    def get_queryset(self) -> Any:
        return selectors.definition_versions(self.kwargs["key"])


class DefinitionXmlView(APIView):
    @extend_schema(
        summary="The BPMN XML of a process definition",
        parameters=[VersionFilterSerializer],
        responses={
            (200, "application/xml"): OpenApiTypes.STR,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, key: str) -> HttpResponse:
        version = query_filters(VersionFilterSerializer, request.query_params).get("version")
        definition = selectors.definition(key, version)
        return diagram_download(definition.bpmn_xml, definition.file_name or f"{key}.bpmn")


class StartInstanceView(APIView):
    @extend_schema(
        operation_id="start_instance",
        summary="Start an instance of a process",
        request=StartInstanceSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: InstanceSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            422: UNPROCESSABLE,
        },
    )
    @idempotent
    def post(
        self, request: Request, key: str, operation_key: KeyedOperation | None = None
    ) -> Response:
        body = StartInstanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = start_instance(
            key=key,
            variables=body.validated_data["variables"],
            business_key=body.validated_data["business_key"],
            version=body.validated_data["version"],
            actor=request.user,
            operation_key=operation_key,
        )
        detail = engine_selectors.new_instance_detail(instance)  # from the rows just written
        return Response(InstanceSerializer(detail).data, status=status.HTTP_201_CREATED)
