"""Request and response shapes of the REST API (DESIGN section 6)."""

from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engine.models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.selectors import waiting_for_events
from engine.services.reasons import MAX_REASON
from processes.models import ProcessDefinition

from .parsers import TextField

_DATETIME = serializers.DateTimeField()


def datetime_text(value: Any) -> str | None:
    """A date and time as a serializer's DateTimeField writes it (the settings' format, the
    current time zone), for the representations written directly."""
    if value is None:
        return None
    text: str | None = _DATETIME.to_representation(value)
    return text


def open_task_fields(task: HumanTask) -> dict[str, Any]:
    """What an instance's open task shows (OpenTaskSerializer); a task in the task API
    (TaskSerializer) shows these and more."""
    return {
        "id": str(task.id),
        "element_id": task.element_id,
        "name": task.name,
        "assignee": task.assignee,
        "candidate_users": list(task.candidate_users),
        "candidate_groups": list(task.candidate_groups),
        "status": task.status,
        "form": task.form,
        "due_at": datetime_text(task.due_at),
        "priority": task.priority,
        "created_at": datetime_text(task.created_at),
    }


class ProblemErrorSerializer(serializers.Serializer):
    field = serializers.CharField(required=False, help_text="Dotted path of a bad field.")
    message = serializers.CharField()
    file = serializers.CharField(required=False, help_text="Deployment errors: the file.")
    line = serializers.IntegerField(required=False, allow_null=True)
    element_id = serializers.CharField(required=False, allow_blank=True)


class ProblemSerializer(serializers.Serializer):
    """RFC 7807 problem details, the shape of every error."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # `errors` is the RFC 7807 extension member; as a class attribute it would shadow
        # Serializer.errors, so it is added here.
        fields: dict[str, serializers.Field] = super().get_fields()
        fields["errors"] = serializers.JSONField(
            required=False,
            help_text=(
                "Field or deployment errors: a list of {field, message} or "
                "{file, line, element_id, message}; form errors: an object of field -> message."
            ),
        )
        return fields


class DeploymentJsonSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    bpmn_xml = serializers.CharField(trim_whitespace=False)


class DeploymentUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)


class DefinitionSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id")

    class Meta:
        model = ProcessDefinition
        fields = [
            "id",
            "key",
            "version",
            "name",
            "deployment",
            "dialect",
            "is_executable",
            "start_form",
            "created_at",
        ]


class DeploymentResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    created = serializers.BooleanField(help_text="False when every definition was unchanged.")
    definitions = DefinitionSerializer(many=True)
    warnings = serializers.ListField(
        child=serializers.DictField(),
        help_text="Tolerated departures from the BPMN schema (deployed anyway): "
        "{file, line, element_id, element_name, message}.",
    )


class ValidatedProcessSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    file = serializers.CharField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    dialect = serializers.CharField()
    processes = ValidatedProcessSerializer(many=True)


class StartInstanceSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict)
    business_key = serializers.CharField(
        max_length=255, required=False, allow_null=True, allow_blank=True, default=None
    )
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


class TaskSerializer(serializers.ModelSerializer):
    """A task with its form. The fields declare the contract (and the OpenAPI schema);
    `to_representation` writes the same values directly, without DRF's per-field round trip,
    which cost more than the query for a page of 500 (tests/api/test_task_representation.py
    holds both to the same answer)."""

    instance = serializers.UUIDField(source="instance_id")
    # The process key the task row keeps (HumanTask.process_key): no definition to read.
    definition = serializers.CharField(source="process_key")
    business_key = serializers.CharField(source="instance.business_key", allow_null=True)

    def to_representation(self, instance: HumanTask) -> dict[str, Any]:
        task = instance
        values = open_task_fields(task)
        values.update(
            instance=str(task.instance_id),
            definition=task.process_key,
            business_key=task.instance.business_key,
            lane=task.lane,
            completed_at=datetime_text(task.completed_at),
        )
        return {name: values[name] for name in self.Meta.fields}  # in the schema's order

    class Meta:
        model = HumanTask
        fields = [
            "id",
            "instance",
            "definition",
            "business_key",
            "element_id",
            "name",
            "lane",
            "assignee",
            "candidate_users",
            "candidate_groups",
            "status",
            "form",
            "due_at",
            "priority",
            "created_at",
            "completed_at",
        ]


class OpenTaskSerializer(serializers.ModelSerializer):
    """An instance's open task, written directly like TaskSerializer's."""

    def to_representation(self, instance: HumanTask) -> dict[str, Any]:
        return open_task_fields(instance)

    class Meta:
        model = HumanTask
        fields = [
            "id",
            "element_id",
            "name",
            "assignee",
            "candidate_users",
            "candidate_groups",
            "status",
            "form",
            "due_at",
            "priority",
            "created_at",
        ]


class JobRetrySerializer(serializers.Serializer):
    """One round of a job before an operator's retry (its parameters' values are not shown)."""

    attempts = serializers.IntegerField()
    error_code = serializers.CharField()
    error = serializers.CharField()
    failed_at = serializers.CharField()
    retried_at = serializers.CharField()
    retried_by = serializers.CharField()
    changed = serializers.ListField(
        child=serializers.CharField(),
        help_text="The parameters the retry evaluated differently (names only).",
    )


class JobSerializer(serializers.ModelSerializer):
    queue_note = serializers.CharField(
        read_only=True,
        help_text=(
            '"queued, broker unreachable" while the job waits for the broker, "for a callback '
            'until ..." while it waits for its callback, "waiting for the connection NAME: '
            'REASON" while it waits for a limit of a connection; else empty.'
        ),
    )
    retries = JobRetrySerializer(
        source="history",
        many=True,
        read_only=True,
        help_text="The rounds before each operator's retry, oldest first.",
    )

    class Meta:
        model = ServiceJob
        fields = [
            "id",
            "element_id",
            "connector",
            "status",
            "queue_note",
            "attempt",
            "max_attempts",
            "next_attempt_at",
            "callback_until",
            "error_code",
            "last_error",
            "retries",
            "created_at",
            "updated_at",
        ]


class IncidentSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["job", "script"],
        help_text="job: a service call failed for good; script: a diagram script or "
        "expression of the element failed.",
    )
    job = serializers.UUIDField(allow_null=True, help_text="The dead job (kind job).")
    element_id = serializers.CharField()
    error_code = serializers.CharField(allow_blank=True)
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    since = serializers.DateTimeField()


class InstanceSerializer(serializers.ModelSerializer):
    definition = serializers.CharField(source="definition.key")
    version = serializers.IntegerField(source="definition.version")
    started_by = serializers.CharField(source="started_by.username", allow_null=True, default=None)
    open_tasks = serializers.SerializerMethodField()
    waiting_for = serializers.SerializerMethodField()
    jobs = JobSerializer(many=True, read_only=True)
    incident = serializers.SerializerMethodField()

    class Meta:
        model = ProcessInstance
        fields = [
            "id",
            "definition",
            "version",
            "business_key",
            "status",
            "variables",
            "open_tasks",
            "waiting_for",
            "jobs",
            "incident",
            "started_by",
            "created_at",
            "updated_at",
            "completed_at",
        ]

    def to_representation(self, instance: ProcessInstance) -> dict[str, Any]:
        """Written directly, not field by field through DRF (whose fields cost a tenth of a
        start's CPU time); tests/api/test_instance_representation.py holds both to the same
        answer."""
        definition, starter = instance.definition, instance.started_by
        jobs = list(instance.jobs.all())
        return {
            "id": str(instance.id),
            "definition": definition.key,
            "version": definition.version,
            "business_key": instance.business_key,
            "status": instance.status,
            "variables": instance.variables,
            "open_tasks": self.get_open_tasks(instance),
            "waiting_for": self.get_waiting_for(instance),
            "jobs": JobSerializer(jobs, many=True).data if jobs else [],
            "incident": self.get_incident(instance),
            "started_by": starter.username if starter is not None else None,
            "created_at": datetime_text(instance.created_at),
            "updated_at": datetime_text(instance.updated_at),
            "completed_at": datetime_text(instance.completed_at),
        }

    def _open_tasks(self, instance: ProcessInstance) -> list[HumanTask]:
        return [t for t in instance.human_tasks.all() if t.is_active]

    def get_open_tasks(self, instance: ProcessInstance) -> list[dict[str, Any]]:
        return [open_task_fields(task) for task in self._open_tasks(instance)]

    def get_waiting_for(self, instance: ProcessInstance) -> list[dict[str, Any]]:
        waiting = [
            {"type": "user_task", "element_id": t.element_id, "name": t.name, "task": str(t.id)}
            for t in self._open_tasks(instance)
        ]
        waiting.extend(
            {
                "type": "service_job",
                "element_id": j.element_id,
                "connector": j.connector,
                "job": str(j.id),
                "status": j.status,
            }
            for j in instance.jobs.all()
            if j.status
            in (ServiceJob.Status.PENDING, ServiceJob.Status.RUNNING, ServiceJob.Status.WAITING)
        )
        waiting.extend(waiting_for_events(instance))
        return waiting

    @extend_schema_field(IncidentSerializer(allow_null=True))
    def get_incident(self, instance: ProcessInstance) -> dict[str, Any] | None:
        """What failed last (a script, or a dead job), while the instance is in incident."""
        if instance.status != ProcessInstance.Status.INCIDENT:
            return None
        recorded = instance.incident
        if isinstance(recorded, dict) and recorded.get("kind") == "script":
            return {
                "kind": "script",
                "job": None,
                "element_id": recorded.get("element_id", ""),
                "error_code": recorded.get("error_code", ""),
                "error": recorded.get("error", ""),
                "attempts": recorded.get("attempts", 1),
                "since": parse_datetime(recorded.get("since") or "") or instance.updated_at,
            }
        dead = [j for j in instance.jobs.all() if j.status == ServiceJob.Status.DEAD]
        if not dead:
            return None
        job = max(dead, key=lambda j: j.updated_at)
        return {
            "kind": "job",
            "job": job.id,
            "element_id": job.element_id,
            "error_code": job.error_code,
            "error": job.last_error,
            "attempts": job.attempt,
            "since": job.updated_at,
        }


class CompleteTaskSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict)


class InstanceEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)

    class Meta:
        model = InstanceEvent
        fields = ["id", "type", "element_id", "actor", "payload", "created_at"]


class StrictCharField(serializers.CharField):
    """Text that must be a JSON string (CharField would turn a number into text)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class ReasonSerializer(serializers.Serializer):
    # A string only (a number is no reason); the length is the services' own limit.
    reason = StrictCharField(required=False, allow_blank=True, max_length=MAX_REASON)


class VariablesSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict)


class DefinitionFilterSerializer(serializers.Serializer):
    key = TextField(required=False, help_text="Part of the process key.")
    name = TextField(required=False, help_text="Part of the process name.")


class VersionFilterSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="A version; the latest when left out."
    )


class InstanceFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ProcessInstance.Status.choices, required=False)
    definition = TextField(required=False, help_text="A process key.")
    business_key = TextField(required=False)


class TaskFilterSerializer(serializers.Serializer):
    mine = serializers.BooleanField(
        required=False, default=False, help_text="Only tasks assigned to the caller."
    )
    group = TextField(required=False, help_text="Only tasks of this group.")
    instance = serializers.UUIDField(required=False, help_text="Only tasks of this instance.")
    status = serializers.ChoiceField(
        choices=["completed"], required=False, help_text="`completed`: tasks the caller completed."
    )


def query_filters(serializer_class: type[serializers.Serializer], params: Any) -> dict[str, Any]:
    """Validated query parameters (a 400 names each bad one); unknown ones are ignored."""
    known = {name: params.get(name) for name in serializer_class().fields if name in params}
    query = serializer_class(data=known)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True}
)
class PlainValueField(serializers.Field):
    """A JSON string, number, boolean or null (no object or array)."""

    def to_internal_value(self, data: Any) -> Any:
        if data is not None and not isinstance(data, str | int | float | bool):
            raise serializers.ValidationError("Must be a string, a number, true, false or null.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class MessageSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=255, trim_whitespace=False, help_text="The message's name (bpmn:message name)."
    )
    message_id = StrictCharField(
        max_length=255,
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        help_text="Makes the message idempotent: a message with an id that was used before "
        "does nothing and gets the first result again.",
    )
    business_key = StrictCharField(
        max_length=255,
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        help_text="Only an instance with this business key (a started one gets it).",
    )
    correlation_keys = serializers.DictField(
        child=PlainValueField(allow_null=True),
        required=False,
        default=dict,
        help_text="Values that pick the waiting instance: SpiffArena correlation properties, "
        "or (where the waiting event names none) the instance's variables of these names.",
    )
    variables = serializers.DictField(
        required=False,
        default=dict,
        help_text="What the message carries: Camunda diagrams merge it into the instance's "
        "variables; SpiffArena diagrams receive it as the message payload.",
    )


class MessageResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    message_id = serializers.CharField(allow_null=True)
    outcome = serializers.ChoiceField(
        choices=["correlated", "started", "deferred"],
        help_text="correlated: a waiting instance received it; started: it started an "
        "instance at a message start event; deferred: the instance is suspended and receives "
        "it when resumed.",
    )
    instance = serializers.UUIDField()
    process = serializers.CharField()
    instance_status = serializers.CharField(help_text="The instance's status afterwards.")


class SignalSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=255, trim_whitespace=False, help_text="The signal's name (bpmn:signal name)."
    )
    variables = serializers.DictField(
        required=False, default=dict, help_text="What the signal carries."
    )


class SignalResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    instances = serializers.IntegerField(help_text="Waiting instances it is delivered to.")
    start_events = serializers.IntegerField(help_text="Signal start events it starts.")
