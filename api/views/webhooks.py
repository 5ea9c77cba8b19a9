"""Webhooks: `POST /api/v1/webhooks/{name}/` (inbound deliveries, signed, no Baton user) and
`/api/v1/webhook-subscriptions/` (outbound subscriptions and their delivery log, operators)."""

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.models import InboundWebhook, WebhookDelivery, WebhookSubscription
from engine.selectors import webhooks as webhook_selectors
from engine.services.webhooks_in import (
    delete_inbound_webhook,
    receive_webhook,
    save_inbound_webhook,
)
from engine.services.webhooks_out import delete_subscription, save_subscription

from ..schema import BAD_REQUEST, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED, problem
from ..serializers import StrictCharField

RECEIPT = inline_serializer(
    "WebhookReceipt",
    {
        "webhook": serializers.CharField(),
        "delivery": serializers.CharField(help_text="The delivery id it was kept under."),
        "outcome": serializers.ChoiceField(["correlated", "started", "deferred"]),
        "instance": serializers.UUIDField(),
        "process": serializers.CharField(),
        "instance_status": serializers.CharField(),
    },
)


class WebhookReceiveView(APIView):
    authentication_classes: list[Any] = []  # no session, no CSRF: the signature is the credential
    permission_classes = [AllowAny]
    parser_classes: list[Any] = []  # the body is read raw: the signature is over its bytes

    @extend_schema(
        operation_id="receive_webhook",
        summary="An inbound webhook delivery: starts a process or sends a message",
        description=(
            "Called by an outside system, not by a Baton user: no token or session. The "
            "body is signed with HMAC-SHA256 keyed with the webhook's secret: "
            "`X-Hub-Signature-256: sha256=<hex>` over the body (GitHub style), or "
            "`Webhook-Signature: t=<unix time>,v1=<hex>` over `<t>.<body>` (timestamped, "
            "within the webhook's tolerance). JSON, or a CloudEvent (structured "
            "`application/cloudevents+json`, or binary with `ce-*` headers). A delivery "
            "happens once per delivery id (CloudEvents source and id; else X-GitHub-Delivery, "
            "Webhook-Id, X-Delivery-Id or Idempotency-Key; else the body's hash): a replay "
            "answers 200 with the first outcome and `Idempotent-Replayed: true`."
        ),
        auth=[],
        request={
            "application/json": OpenApiTypes.ANY,
            "application/cloudevents+json": OpenApiTypes.OBJECT,
        },
        responses={
            200: OpenApiResponse(RECEIPT, "Taken (or taken before: the same outcome)."),
            400: BAD_REQUEST,
            401: problem("The signature is missing, stale or wrong; nothing changed."),
            404: problem("No such webhook, or no instance waits for its message."),
            409: problem("Several instances wait for its message."),
            413: problem("The body is over BATON_WEBHOOK_MAX_BYTES."),
            503: problem("The webhook's secret is not declared in the secret store."),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        # The body as bytes (no parser reads it first): the signature covers exactly these.
        receipt = receive_webhook(
            name=name,
            body=request.body,
            content_type=request.content_type or "",
            headers=request.headers,
        )
        headers = {"Idempotent-Replayed": "true"} if receipt.replayed else None
        return Response(receipt.body, status=status.HTTP_200_OK, headers=headers)


# As engine.connectors.secrets.REFERENCE names a secret.
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z0-9_]+)*$"  # noqa: S105


class StrictBooleanField(serializers.BooleanField):
    """true or false only (DRF also takes 0, 1, "yes", ...: not what the schema says)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SubscriptionSerializer(serializers.ModelSerializer):
    enabled = StrictBooleanField(required=False, default=True)
    name = StrictCharField(max_length=255, trim_whitespace=False)  # taken as given, like names
    process_key = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    # Spelled out in ASCII: Python and the schema's (ECMA) regexes differ on what \s is.
    url = serializers.RegexField(r"^https?://[^\x00-\x20/?#]+[^\x00-\x20]*$", max_length=2000)
    secret_name = serializers.RegexField(
        SECRET_NAME_PATTERN,
        max_length=255,
        help_text="The name of the signing secret in the secret store.",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(WebhookSubscription.EventType.choices), min_length=1
    )

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "name",
            "url",
            "secret_name",
            "event_types",
            "process_key",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "instance",
            "status",
            "attempts",
            "last_response_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "payload",
        ]


OPERATORS = "Operators only (403 for others)."


@extend_schema(tags=["webhooks"])
class SubscriptionListView(generics.ListCreateAPIView):
    serializer_class = SubscriptionSerializer

    def get_queryset(self) -> Any:
        return webhook_selectors.subscriptions(self.request.user)

    @extend_schema(
        summary="Outbound webhook subscriptions",
        description=OPERATORS,
        responses={200: SubscriptionSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Subscribe a URL to instance events (started, completed, incident, task_created)",
        description=OPERATORS
        + " Deliveries are signed with the secret `secret_name` names in the secret store.",
        responses={
            201: SubscriptionSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = SubscriptionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        saved = save_subscription(actor=request.user, data=dict(body.validated_data))
        return Response(SubscriptionSerializer(saved).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class SubscriptionDetailView(APIView):
    @extend_schema(
        summary="A webhook subscription",
        description=OPERATORS,
        responses={
            200: SubscriptionSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        found = webhook_selectors.subscription(request.user, pk)
        return Response(SubscriptionSerializer(found).data)

    @extend_schema(
        summary="Change a webhook subscription",
        description=OPERATORS,
        request=SubscriptionSerializer,
        responses={
            200: SubscriptionSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        body = SubscriptionSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        saved = save_subscription(
            actor=request.user, data=dict(body.validated_data), subscription_id=pk
        )
        return Response(SubscriptionSerializer(saved).data)

    @extend_schema(
        summary="Delete a webhook subscription (and its delivery log)",
        description=OPERATORS,
        responses={204: None, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request: Request, pk: int) -> Response:
        delete_subscription(actor=request.user, subscription_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["webhooks"],
    summary="The delivery log of a subscription, newest first",
    description=OPERATORS,
    responses={
        200: DeliverySerializer(many=True),
        401: UNAUTHENTICATED,
        403: FORBIDDEN,
        404: NOT_FOUND,
    },
)
class SubscriptionDeliveriesView(generics.ListAPIView):
    serializer_class = DeliverySerializer

    def get_queryset(self) -> Any:
        return webhook_selectors.deliveries(self.request.user, self.kwargs["pk"])


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (IntegerField also takes "5" and 5.0)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class InboundWebhookSerializer(serializers.ModelSerializer):
    name = serializers.RegexField(r"^[-a-zA-Z0-9_]+$", max_length=100)
    action = serializers.ChoiceField(InboundWebhook.Action.choices)
    process_key = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    message_name = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    correlation = serializers.DictField(
        child=StrictCharField(min_length=1, max_length=255),
        required=False,
        default=dict,
        help_text='Correlation key -> dotted path into the payload, e.g. {"order_id": "order.id"}.',
    )
    business_key_path = StrictCharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    payload_variable = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100, required=False, default="webhook"
    )
    secret_name = serializers.RegexField(SECRET_NAME_PATTERN, max_length=255)
    signature_style = serializers.ChoiceField(
        InboundWebhook.SignatureStyle.choices, required=False, default="github"
    )
    signature_header = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="An HTTP header name; blank: the style's own header.",
    )
    tolerance_seconds = StrictIntegerField(
        min_value=1, max_value=86400, required=False, default=300
    )
    enabled = StrictBooleanField(required=False, default=True)
    url = serializers.SerializerMethodField(help_text="Where senders post deliveries.")

    class Meta:
        model = InboundWebhook
        fields = [
            "id",
            "name",
            "url",
            "action",
            "process_key",
            "message_name",
            "correlation",
            "business_key_path",
            "payload_variable",
            "secret_name",
            "signature_style",
            "signature_header",
            "tolerance_seconds",
            "enabled",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_url(self, hook: InboundWebhook) -> str:
        return reverse("api:webhook-receive", kwargs={"name": hook.name})


@extend_schema(tags=["webhooks"])
class InboundWebhookListView(generics.ListCreateAPIView):
    serializer_class = InboundWebhookSerializer

    def get_queryset(self) -> Any:
        return webhook_selectors.inbound_webhooks(self.request.user)

    @extend_schema(
        summary="Inbound webhooks",
        description=OPERATORS,
        responses={200: InboundWebhookSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Declare an inbound webhook: a delivery starts a process or sends a message",
        description=OPERATORS
        + " `start` needs `process_key`, `message` needs `message_name`; deliveries are "
        "verified with the secret `secret_name` names in the secret store.",
        responses={
            201: InboundWebhookSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            409: problem("Another webhook has this name."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = InboundWebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        saved = save_inbound_webhook(actor=request.user, data=dict(body.validated_data))
        return Response(InboundWebhookSerializer(saved).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class InboundWebhookDetailView(APIView):
    @extend_schema(
        summary="An inbound webhook",
        description=OPERATORS,
        responses={
            200: InboundWebhookSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        found = webhook_selectors.inbound_webhook(request.user, pk)
        return Response(InboundWebhookSerializer(found).data)

    @extend_schema(
        summary="Change an inbound webhook",
        description=OPERATORS,
        request=InboundWebhookSerializer,
        responses={
            200: InboundWebhookSerializer,
            400: BAD_REQUEST,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: problem("Another webhook has this name."),
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        body = InboundWebhookSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        saved = save_inbound_webhook(
            actor=request.user, data=dict(body.validated_data), webhook_id=pk
        )
        return Response(InboundWebhookSerializer(saved).data)

    @extend_schema(
        summary="Delete an inbound webhook (its URL answers 404 from then on)",
        description=OPERATORS,
        responses={204: None, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request: Request, pk: int) -> Response:
        delete_inbound_webhook(actor=request.user, webhook_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
