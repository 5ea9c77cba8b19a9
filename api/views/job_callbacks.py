"""`POST /api/v1/jobs/{id}/callback/`: a called API reports the outcome of a long-running
call it accepted (engine/services/job_callbacks.py). The caller is no Baton user: the job's
own token (header `Baton-Callback-Token`) is its only credential."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.connectors.callbacks import TOKEN_HEADER
from engine.services.job_callbacks import receive_job_callback

from ..schema import BAD_REQUEST, NOT_FOUND, problem


class CallbackReceiptSerializer(serializers.Serializer):
    job = serializers.UUIDField()
    status = serializers.CharField(help_text="The job's status after the callback.")
    duplicate = serializers.BooleanField(
        help_text="This call's outcome had come before: nothing changed."
    )


TOKEN_PARAMETER = OpenApiParameter(
    TOKEN_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="The token Baton sent with the call (header Baton-Callback-Token).",
)


class JobCallbackView(APIView):
    authentication_classes: list[Any] = []  # no session: no CSRF; the token is the credential
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return TOKEN_HEADER  # so that a missing token is a 401, not a 403

    @extend_schema(
        operation_id="job_callback",
        summary="Report the outcome of a long-running call (the called API's callback)",
        description=(
            "Called by the API a long-running call went to, not by a Baton user: no token or "
            "session; the job's callback token is the only credential. "
            'The body is the outcome: `{"error_code", "error_message", "details"}` throws '
            'that BPMN error from the task, `{"failure": "..."}` opens an incident, and any '
            "other JSON value is the result (the task's output reads it as "
            '`{"body": <this body>, "accepted": <the 202 answer>}`). A repeated callback of '
            "the same call changes nothing and answers 200 with `duplicate: true`."
        ),
        auth=[],
        parameters=[TOKEN_PARAMETER],
        request=OpenApiTypes.ANY,
        responses={
            200: OpenApiResponse(CallbackReceiptSerializer, "Applied (or applied before)."),
            400: BAD_REQUEST,
            401: problem("No Baton-Callback-Token header."),
            403: problem("The token is not this job's."),
            404: NOT_FOUND,
            409: problem("The job waits for no callback (it timed out, was cancelled or retried)."),
        },
    )
    def post(self, request: Request, pk: str) -> Response:
        token = request.headers.get(TOKEN_HEADER, "")
        if not token:
            raise NotAuthenticated(f"Send the job's callback token in {TOKEN_HEADER}.")
        receipt = receive_job_callback(job_id=pk, token=token, body=request.data)
        return Response(
            CallbackReceiptSerializer(
                {"job": receipt.job_id, "status": receipt.status, "duplicate": receipt.duplicate}
            ).data
        )
