"""Messages and signals from outside: `POST /api/v1/messages/` and `POST /api/v1/signals/`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.services import broadcast_signal, correlate_message
from engine.services.operation_keys import KeyedOperation

from ..errors import MESSAGE_OUTCOME_STATUSES
from ..idempotency import IDEMPOTENCY_PARAMETER, idempotent
from ..schema import BAD_REQUEST, FORBIDDEN, UNAUTHENTICATED, problem
from ..serializers import (
    MessageResultSerializer,
    MessageSerializer,
    SignalResultSerializer,
    SignalSerializer,
)


class MessageView(APIView):
    @extend_schema(
        operation_id="send_message",
        summary="Send a message: to the one instance waiting for it, or to start a process",
        request=MessageSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: OpenApiResponse(MessageResultSerializer, "A waiting instance received it."),
            201: OpenApiResponse(MessageResultSerializer, "It started an instance."),
            202: OpenApiResponse(
                MessageResultSerializer,
                "The instance is suspended; it receives the message on resume.",
            ),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: problem("No instance waits for it and no process starts on it."),
            409: problem("Several instances or start events match; `errors` lists them."),
            422: problem(
                "A diagram script failed while the message was delivered (nothing "
                "changed), or the Idempotency-Key was used with another body."
            ),
        },
    )
    @idempotent
    def post(self, request: Request, operation_key: KeyedOperation | None = None) -> Response:
        body = MessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = correlate_message(
            actor=request.user, operation_key=operation_key, **body.validated_data
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return Response(
            result.body, status=MESSAGE_OUTCOME_STATUSES[result.outcome], headers=headers
        )


class SignalView(APIView):
    @extend_schema(
        operation_id="send_signal",
        summary="Broadcast a signal to every waiting instance and signal start event",
        request=SignalSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            202: OpenApiResponse(
                SignalResultSerializer, "Accepted: workers deliver it to each instance."
            ),
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            422: problem("The Idempotency-Key was used with another body."),
        },
    )
    @idempotent
    def post(self, request: Request, operation_key: KeyedOperation | None = None) -> Response:
        body = SignalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        answer = broadcast_signal(
            actor=request.user, operation_key=operation_key, **body.validated_data
        )
        return Response(answer, status=status.HTTP_202_ACCEPTED)
