"""Request and response bodies of the batch endpoints (api/views/batches.py)."""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from engine.models import Batch, BatchItem, ProcessInstance
from engine.selectors import WAIT_KINDS
from engine.selectors.batches import BatchFilter

from .serializers import StrictCharField

MAX_TEXT = 255


def _text(help_text: str, max_length: int = MAX_TEXT) -> StrictCharField:
    # Taken as given, as the schema says (a string of at least one character): trimmed, a
    # filter of white space or control characters would be refused as blank.
    return StrictCharField(
        required=False,
        min_length=1,
        max_length=max_length,
        trim_whitespace=False,
        help_text=help_text,
    )


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing else (BooleanField also takes "yes", 1, "on", ...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (IntegerField also takes "7" and 7.0)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


@extend_schema_field({"type": "string", "pattern": r"\S", "maxLength": 2000})
class ReasonField(StrictCharField):
    """Text with something besides white space in it: white space as JSON Schema's `\\S`
    means it (ECMAScript's, which counts U+FEFF) and as Python's `strip` does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, max_length=2000, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not value.replace("\ufeff", "").strip():
            self.fail("blank")
        return value


# Unknown fields are an error: a misspelt filter would otherwise select every instance.
class _Closed(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["There is no such field."] for name in unknown}
                )
        return super().to_internal_value(data)


class ClosedSerializerExtension(OpenApiSerializerExtension):
    """The schema says what the API does: no other fields (`additionalProperties: false`)."""

    target_class = "api.batch_serializers._Closed"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        # drf-spectacular's documented way to build on a serializer's own schema.
        schema = auto_schema._map_serializer(  # noqa: SLF001
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        return schema


class BatchFilterSerializer(_Closed):
    status = serializers.ChoiceField(choices=ProcessInstance.Status.choices, required=False)
    definition = _text("A process key.")
    version = StrictIntegerField(
        required=False, min_value=1, max_value=2_147_483_647, help_text="A version of it."
    )
    business_key = _text("An exact business key.")
    incident_error = _text("Part of the incident's error text (any case).", 500)
    waiting_at = _text("The id of an element where a token waits (a task, a timer, ...).")
    waiting_for = serializers.ChoiceField(
        choices=list(WAIT_KINDS.items()), required=False, help_text="What the instance waits for."
    )
    started_after = serializers.DateTimeField(required=False, help_text="Started at or after.")
    started_before = serializers.DateTimeField(required=False, help_text="Started before.")


class MigrateFilterSerializer(BatchFilterSerializer):
    definition = StrictCharField(
        min_length=1,
        max_length=MAX_TEXT,
        trim_whitespace=False,
        help_text="The process key (versions are per key).",
    )


class NoArguments(_Closed):
    pass


class SuspendArguments(_Closed):
    reason = StrictCharField(
        required=False, allow_blank=True, max_length=2000, help_text="Kept in the audit trail."
    )


class TerminateArguments(_Closed):
    reason = ReasonField(help_text="Why (required): kept in the audit trail.")


class RetryArguments(_Closed):
    variables = serializers.DictField(
        required=False, help_text="Merged into each instance's data before the retry."
    )


class MigrateArguments(_Closed):
    version = StrictIntegerField(
        min_value=1, max_value=2_147_483_647, help_text="The version of filter.definition."
    )


class DeleteFinishedArguments(_Closed):
    finished_before = serializers.DateTimeField(
        required=False, help_text="Only instances that finished before (default: now)."
    )


class SetVariablesArguments(_Closed):
    variables = serializers.DictField(help_text="Merged into each instance's data.")


Operation = Batch.Operation
# Each operation's arguments: (serializer, whether `arguments` must be given).
ARGUMENTS: dict[Batch.Operation, tuple[type[serializers.Serializer], bool]] = {
    Operation.SUSPEND: (SuspendArguments, False),
    Operation.RESUME: (NoArguments, False),
    Operation.TERMINATE: (TerminateArguments, True),
    Operation.CANCEL: (TerminateArguments, True),
    Operation.RETRY: (RetryArguments, False),
    Operation.MIGRATE: (MigrateArguments, True),
    Operation.DELETE_FINISHED: (DeleteFinishedArguments, False),
    Operation.SET_VARIABLES: (SetVariablesArguments, True),
}


def _request_serializer(operation: Batch.Operation) -> type[serializers.Serializer]:
    arguments_class, required = ARGUMENTS[operation]
    filter_class = (
        MigrateFilterSerializer if operation == Operation.MIGRATE else (BatchFilterSerializer)
    )
    # Its schema component is "<Operation>BatchRequest" (COMPONENT_SPLIT_REQUEST adds it).
    name = "".join(part.title() for part in operation.split("_")) + "Batch"
    return type(
        name,
        (_Closed,),
        {
            "operation": serializers.ChoiceField(choices=[operation.value]),
            "arguments": arguments_class(required=required),
            "filter": filter_class(
                help_text="Which instances; `{}` selects every one (the operation's "
                "statuses still apply)."
            ),
            "dry_run": StrictBooleanField(
                default=False, help_text="Only count and sample what the batch would touch."
            ),
            "__module__": __name__,
        },
    )


REQUEST_SERIALIZERS: dict[str, type[serializers.Serializer]] = {
    str(operation.value): _request_serializer(operation) for operation in Operation
}


class _AnyOperation(_Closed):
    """Before the operation is known: only to report a missing or unknown one."""

    operation = serializers.ChoiceField(choices=Operation.choices)


class BatchRequestProxy(PolymorphicProxySerializer):
    """One request body per operation, chosen by `operation`."""


class BatchRequestExtension(PolymorphicProxySerializerExtension):
    """The body is required: say so on the choice of bodies (each of them requires these)."""

    target_class = "api.batch_serializers.BatchRequestProxy"
    priority = 0

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = super().map_serializer(auto_schema, direction)
        schema["required"] = ["operation", "filter"]
        return schema


BATCH_REQUEST = BatchRequestProxy(
    component_name="NewBatch",
    serializers=dict(REQUEST_SERIALIZERS),
    resource_type_field_name="operation",
)


def batch_request(data: Any) -> tuple[str, dict[str, Any], BatchFilter, bool]:
    """The operation, its arguments (as the service takes them), the filter and dry_run;
    a 400 names each bad field."""
    operation = data.get("operation") if isinstance(data, dict) else None
    serializer_class = REQUEST_SERIALIZERS.get(operation) if isinstance(operation, str) else None
    if serializer_class is None:
        _AnyOperation(data=data if isinstance(data, dict) else {}).is_valid(raise_exception=True)
        raise serializers.ValidationError({"operation": ["Not a batch operation."]})
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    validated = body.validated_data
    arguments = dict(validated.get("arguments") or {})
    if "finished_before" in arguments:
        arguments["finished_before"] = arguments["finished_before"].isoformat()
    given = BatchFilter(**validated["filter"])
    return validated["operation"], arguments, given, validated["dry_run"]


class BatchItemSerializer(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id")
    outcome = serializers.SerializerMethodField()

    class Meta:
        model = BatchItem
        fields = ["position", "instance", "outcome", "message"]

    @extend_schema_field(serializers.ChoiceField(choices=["pending", "ok", "skipped", "failed"]))
    def get_outcome(self, item: BatchItem) -> str:
        return item.outcome or "pending"


class BatchSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)
    succeeded = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "operation",
            "arguments",
            "filter",
            "status",
            "actor",
            "total",
            "done",
            "succeeded",
            "skipped",
            "failed",
            "error",
            "created_at",
            "updated_at",
            "finished_at",
        ]

    def get_succeeded(self, batch: Batch) -> int:
        return batch.done - batch.skipped - batch.failed


class BatchDetailSerializer(BatchSerializer):
    problems = serializers.SerializerMethodField()

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "problems"]

    @extend_schema_field(BatchItemSerializer(many=True))
    def get_problems(self, batch: Batch) -> list[dict[str, Any]]:
        """The first skipped and failed items (all of them: GET .../items/?outcome=)."""
        return list(BatchItemSerializer(self.context.get("problems", []), many=True).data)


class BatchPreviewSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=True)
    operation = serializers.CharField()
    matched = serializers.IntegerField(help_text="Instances the filter matches.")
    targets = serializers.IntegerField(help_text="Of those, the ones the operation would change.")
    matched_by_status = serializers.DictField(child=serializers.IntegerField())
    sample = serializers.ListField(
        child=serializers.UUIDField(), help_text="Up to 20 target instance ids."
    )
    migration_plans = serializers.ListField(
        child=serializers.DictField(),
        help_text="migrate: the plan of each sampled instance (possible, blocking, tokens).",
    )


class BatchItemFilterSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["pending", "ok", "skipped", "failed"], required=False
    )
