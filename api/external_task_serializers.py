"""Request and response bodies of the external task endpoints (api/views/external_tasks.py).
Durations are milliseconds, as in Camunda's external task API."""

from rest_framework import serializers

from engine.services.external_tasks import MAX_LOCK_MS, MAX_TASKS, MAX_WAIT_MS
from engine.services.job_outcomes import MAX_ERROR_CODE_CHARS

from .serializers import StrictCharField

WORKER_ID_HELP = "The worker's own id: the one that holds a task's lock."


class FetchTopicSerializer(serializers.Serializer):
    topic_name = StrictCharField(
        min_length=1,
        trim_whitespace=False,
        max_length=200,
        help_text="A Camunda 7 camunda:topic or a Camunda 8 zeebe:taskDefinition type.",
    )
    lock_duration = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LOCK_MS,
        help_text="How long (ms) the worker holds the tasks it gets; then they return to "
        "the queue unless it extends the lock.",
    )
    variables = serializers.ListField(
        child=StrictCharField(min_length=1, trim_whitespace=False, max_length=255),
        required=False,
        allow_null=True,
        default=None,
        help_text="The variables to send with each task (default: all of them).",
    )


class FetchAndLockSerializer(serializers.Serializer):
    worker_id = StrictCharField(
        min_length=1, trim_whitespace=False, max_length=255, help_text=WORKER_ID_HELP
    )
    max_tasks = serializers.IntegerField(
        min_value=1, max_value=MAX_TASKS, default=10, help_text="At most this many tasks."
    )
    async_response_timeout = serializers.IntegerField(
        min_value=0,
        max_value=MAX_WAIT_MS,
        default=0,
        help_text="A long poll: with no task there, wait up to this long (ms) for one.",
    )
    topics = serializers.ListField(child=FetchTopicSerializer(), min_length=1, max_length=100)


class LockedTaskSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The external task's id, for complete/failure/...")
    topic_name = serializers.CharField()
    worker_id = serializers.CharField()
    lock_expiration_time = serializers.DateTimeField()
    process_instance_id = serializers.UUIDField()
    process_definition_key = serializers.CharField()
    activity_id = serializers.CharField(help_text="The service task's element id.")
    business_key = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField(help_text="How many times the task was fetched.")
    retries = serializers.IntegerField(help_text="Failures left before an incident.")
    error_message = serializers.CharField(help_text="The last reported failure, if any.")
    variables = serializers.DictField(
        help_text="The instance's variables with the task's input parameters over them."
    )
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text="The service task's static headers (Camunda 8 zeebe:taskHeaders).",
    )


class WorkerSerializer(serializers.Serializer):
    worker_id = StrictCharField(
        min_length=1, trim_whitespace=False, max_length=255, help_text=WORKER_ID_HELP
    )


class CompleteExternalTaskSerializer(WorkerSerializer):
    variables = serializers.DictField(
        required=False, default=dict, help_text="Variables to set on the instance."
    )


class ExternalTaskFailureSerializer(WorkerSerializer):
    error_message = StrictCharField(
        min_length=1, trim_whitespace=False, max_length=2000, help_text="What went wrong."
    )
    error_details = StrictCharField(
        max_length=8000, required=False, allow_blank=True, default="", help_text="E.g. a trace."
    )
    retries = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text="Failures left: 0 opens an incident. Default: what the diagram's retry "
        "policy leaves.",
    )
    retry_timeout = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text="When (ms from now) the task may be fetched again. Default: the "
        "diagram's backoff.",
    )


class ExternalTaskBpmnErrorSerializer(WorkerSerializer):
    error_code = StrictCharField(
        min_length=1,
        trim_whitespace=False,
        max_length=MAX_ERROR_CODE_CHARS,
        help_text="The bpmn:error errorCode a boundary event catches.",
    )
    error_message = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")
    variables = serializers.DictField(
        required=False, default=dict, help_text="Variables to set before the error is thrown."
    )


class ExtendLockSerializer(WorkerSerializer):
    new_duration = serializers.IntegerField(
        min_value=1, max_value=MAX_LOCK_MS, help_text="The lock now runs this long (ms) from now."
    )


class LockExpirationSerializer(serializers.Serializer):
    lock_expiration_time = serializers.DateTimeField()
