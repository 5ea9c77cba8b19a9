"""Batch operations over the API: one operation on every instance a filter selects, run by
workers in chunks (engine/services/batches.py), with progress, items and cancel."""

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine import selectors
from engine.services import cancel_batch, create_batch, preview_batch

from ..batch_serializers import (
    BATCH_REQUEST,
    BatchDetailSerializer,
    BatchItemFilterSerializer,
    BatchItemSerializer,
    BatchPreviewSerializer,
    BatchSerializer,
    batch_request,
)
from ..schema import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED
from ..serializers import query_filters

# How many skipped and failed items a batch's answer lists (the items endpoint has all).
PROBLEMS_SHOWN = 20


def batch_response(batch_id: Any, request: Request, code: int = 200) -> Response:
    batch = selectors.batch_for(batch_id, request.user)
    problems = selectors.problem_items(batch, PROBLEMS_SHOWN)
    body = BatchDetailSerializer(batch, context={"problems": problems}).data
    return Response(body, status=code)


class BatchListView(generics.ListAPIView):
    serializer_class = BatchSerializer

    @extend_schema(
        summary="Batch operations, newest first (operators)",
        responses={200: BatchSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return selectors.visible_batches(self.request.user)

    @extend_schema(
        summary="Start a batch operation on every instance a filter selects (operators), "
        "or with dry_run only count and sample what it would touch",
        request=BATCH_REQUEST,
        responses={
            202: OpenApiResponse(BatchDetailSerializer, description="Queued; poll its URL."),
            200: OpenApiResponse(BatchPreviewSerializer, description="The dry run."),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    )
    def post(self, request: Request) -> Response:
        operation, arguments, given, dry_run = batch_request(request.data)
        if dry_run:
            preview = preview_batch(
                actor=request.user, operation=operation, arguments=arguments, given=given
            )
            return Response(BatchPreviewSerializer({"dry_run": True, **asdict(preview)}).data)
        batch = create_batch(
            actor=request.user, operation=operation, arguments=arguments, given=given
        )
        response = batch_response(batch.pk, request, status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/batches/{batch.pk}/"
        return response


class BatchDetailView(APIView):
    @extend_schema(
        summary="A batch's progress: done of total, skipped, failed, the first problems "
        "(operators)",
        responses={
            200: BatchDetailSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        return batch_response(pk, request)


class BatchItemListView(generics.ListAPIView):
    serializer_class = BatchItemSerializer

    @extend_schema(
        summary="The target instances of a batch and what it did to each (operators)",
        parameters=[BatchItemFilterSerializer],
        responses={
            200: BatchItemSerializer(many=True),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        batch = selectors.batch_for(self.kwargs["pk"], self.request.user)
        outcome = query_filters(BatchItemFilterSerializer, self.request.query_params).get("outcome")
        wanted = [] if outcome is None else ["" if outcome == "pending" else outcome]
        return selectors.batch_items(batch, wanted)


class BatchCancelView(APIView):
    @extend_schema(
        summary="Cancel a batch: it stops between chunks (operators)",
        request=None,
        responses={
            200: BatchDetailSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: CONFLICT,
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        cancel_batch(batch_id=pk, actor=request.user)
        return batch_response(pk, request)
