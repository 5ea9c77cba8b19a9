"""Runtime state of process instances, kept in Postgres."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from processes.models import ProcessDefinition


class ProcessInstance(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUSPENDED = "suspended", "Suspended"
        INCIDENT = "incident", "Incident"
        COMPLETED = "completed", "Completed"
        TERMINATED = "terminated", "Terminated"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey(
        ProcessDefinition, related_name="instances", on_delete=models.PROTECT
    )
    business_key = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The serialized workflow (engine.bpmn) without its spec (the spec lives on the definition).
    state = models.JSONField(default=dict)
    # A snapshot of the workflow data, for queries and display.
    variables = models.JSONField(default=dict)
    lock_version = models.PositiveIntegerField(default=0)
    # While in incident: what failed ({"kind": "script" or "job", "element_id", "error", ...}).
    incident = models.JSONField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="started_instances",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Set by a cancel with compensation (engine.services.lifecycle.cancel_instance): the
    # instance runs the compensation handlers of what it completed, and when its workflow then
    # ends it is terminated, not completed (engine.services.instance_status).
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cancelled_instances",
    )
    cancel_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "-created_at"], name="instance_status_created")]

    def __str__(self) -> str:
        return f"{self.definition.key} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.TERMINATED)

    @property
    def is_cancelling(self) -> bool:
        """A cancel with compensation was asked for (its handlers may still run)."""
        return self.cancel_requested_at is not None

    @property
    def cancel_refusal(self) -> str | None:
        """Why a cancel with compensation is refused now, None when it may be cancelled: the
        one rule the service (engine.services.lifecycle.cancel_instance) enforces and the
        admin page follows when it offers the button."""
        if self.is_finished:
            return f"The instance is {self.status}; it cannot be cancelled."
        if self.is_cancelling:
            return "The instance is already being cancelled: its compensation runs."
        if self.status == self.Status.SUSPENDED:
            return (
                "The instance is suspended: resume it so that its compensation can run, "
                "or terminate it."
            )
        return None

    @property
    def tasks_workable(self) -> bool:
        """Whether its open tasks can be claimed and completed now: not while it is suspended,
        in incident or finished."""
        return self.status in TASKS_WORKABLE_STATUSES


# The statuses in which an instance's open tasks can be worked on (claimed, completed).
TASKS_WORKABLE_STATUSES = (ProcessInstance.Status.WAITING, ProcessInstance.Status.RUNNING)


# Candidates only ever look for unclaimed active tasks (a claimed one belongs to its
# assignee, found through human_task_assignee_status), so these indexes cover only those.
UNCLAIMED_TASK = Q(assignee__isnull=True, status__in=["open", "claimed"])


class HumanTask(models.Model):
    """Projection of a READY user or manual task, for fast inbox queries."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLAIMED = "claimed", "Claimed"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.OPEN, Status.CLAIMED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(
        ProcessInstance, related_name="human_tasks", on_delete=models.CASCADE
    )
    spiff_task_id = models.UUIDField()
    # The key of the instance's process, which no version change alters (a migration moves an
    # instance to another version of the same key): the inbox filters and lists processes
    # from the task rows alone, without joining every task of a user to its instance.
    process_key = models.CharField(max_length=200, blank=True, default="")
    element_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    lane = models.CharField(max_length=255, blank=True)
    assignee = models.CharField(max_length=150, null=True, blank=True)
    candidate_users = ArrayField(models.CharField(max_length=150), default=list, blank=True)
    candidate_groups = ArrayField(models.CharField(max_length=150), default=list, blank=True)
    form = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.IntegerField(default=50)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="completed_tasks",
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    submitted_data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        # One open row per READY task; an operator's reset makes a task READY again under
        # the same workflow task id, next to the row of its earlier, completed run.
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "spiff_task_id"],
                condition=Q(status__in=["open", "claimed"]),
                name="human_task_one_open_per_task",
            )
        ]
        indexes = [
            models.Index(fields=["assignee", "status"], name="human_task_assignee_status"),
            GinIndex(
                fields=["candidate_groups"],
                condition=UNCLAIMED_TASK,
                name="human_task_unclaimed_groups",
            ),
            GinIndex(
                fields=["candidate_users"],
                condition=UNCLAIMED_TASK,
                name="human_task_unclaimed_users",
            ),
            models.Index(fields=["completed_by", "-completed_at"], name="human_task_completed_by"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.element_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class ServiceJob(models.Model):
    """The outbox row for one service-task call, written with the instance state."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for a worker (maybe until next_attempt_at)
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # ended in a BPMN error that the diagram caught
        DEAD = "dead", "Dead"  # retries exhausted or an uncaught error: an incident
        CANCELLED = "cancelled", "Cancelled"  # its instance was terminated
        # The called API accepted the work (202) and answers later on the job's callback URL.
        WAITING = "waiting", "Waiting for a callback"

    class Kind(models.TextChoices):
        CONNECTOR = "connector", "Connector"  # called by Baton's Celery workers
        EXTERNAL = "external", "External task"  # fetched and completed by workers over the API

    # A job in one of these states still owns its task; no second job is written for it.
    OPEN_STATUSES = (Status.PENDING, Status.RUNNING, Status.DEAD, Status.WAITING)
    # In flight: the engine is still working on it (the instance is running, not waiting).
    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(ProcessInstance, related_name="jobs", on_delete=models.CASCADE)
    spiff_task_id = models.UUIDField()
    element_id = models.CharField(max_length=255)
    # The connector to call; for an external task, its topic (job type in Camunda 8).
    connector = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CONNECTOR)
    # An external task while fetched (running): the worker that holds its lock, and until when.
    # A lock that ran out returns the task to the queue; only its holder may complete it.
    worker_id = models.CharField(max_length=255, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # The user who fetched it: a worker_id is the client's choice, so only the user who holds
    # the lock (or an operator) may complete, fail, extend or unlock it.
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Evaluated parameters; secrets stay as `secret:NAME` references and are resolved on the worker.
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    # {"interval_seconds": fixed delay} or {"backoff_base_seconds": base of 2**n backoff}
    retry_policy = models.JSONField(default=dict, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    result = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, unique=True)
    # When handing the job to the broker failed (the broker was unreachable after the commit):
    # the sweep hands it over again as soon as it can. Shown as "queued, broker unreachable".
    unqueued_since = models.DateTimeField(null=True, blank=True)
    # While the job waits for a limit of a connection (rate limit, concurrency cap, open
    # circuit breaker): the connection's name (cleared by the claim), what it waited for
    # last, and how often it waited. A wait does not use up an attempt.
    waiting_on = models.CharField(max_length=120, blank=True)
    wait_reason = models.CharField(max_length=200, blank=True)
    waits = models.PositiveIntegerField(default=0)
    # The rounds before each operator's retry, oldest first: {"parameters" (as stored: secrets
    # stay references), "attempts", "error", "error_code", "failed_at", "retried_at",
    # "retried_by", "changed" (names of the parameters the retry evaluated differently)}.
    history = models.JSONField(default=list, blank=True)
    # A long-running call (http with async_callback): until when the job waits for its
    # callback (then the BPMN error CALLBACK_TIMEOUT), and when the callback came.
    callback_until = models.DateTimeField(null=True, blank=True)
    callback_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="service_job_sweep"),
            models.Index(
                fields=["callback_until"],
                condition=Q(status="waiting"),
                name="service_job_callback_due",
            ),
            models.Index(
                fields=["connector", "next_attempt_at"],
                condition=Q(kind="external", status__in=["pending", "running"]),
                name="external_task_fetch",
            ),
            models.Index(
                fields=["waiting_on"],
                condition=Q(status="pending") & ~Q(waiting_on=""),
                name="service_job_waiting_on",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "spiff_task_id"],
                condition=Q(status__in=["pending", "running", "dead", "waiting"]),
                name="service_job_one_open_per_task",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connector} ({self.status})"

    @property
    def queue_note(self) -> str:
        """What to tell about the job's message ("" when nothing is unusual)."""
        if self.status == self.Status.PENDING and self.unqueued_since is not None:
            return "queued, broker unreachable"
        if self.status == self.Status.WAITING and self.callback_until is not None:
            return f"for a callback until {self.callback_until:%Y-%m-%d %H:%M} UTC"
        if self.status == self.Status.PENDING and self.waiting_on:
            return f"waiting for the connection {self.waiting_on}: {self.wait_reason}"
        return ""


class Timer(models.Model):
    """A timer an instance waits for (one row per due time; a cycle adds a row per cycle).
    The timer beat claims due rows (`claimed_until` is the lease) and fires them."""

    instance = models.ForeignKey(ProcessInstance, related_name="timers", on_delete=models.CASCADE)
    spiff_task_id = models.UUIDField()
    element_id = models.CharField(max_length=255)
    due_at = models.DateTimeField()
    fired = models.BooleanField(default=False)
    fired_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["due_at"], condition=Q(fired=False), name="timer_due_unfired"),
        ]

    def __str__(self) -> str:
        return f"{self.element_id} at {self.due_at:%Y-%m-%d %H:%M:%S}"


class MessageSubscription(models.Model):
    """A message an instance waits for; `correlation` holds the correlation property values
    it expects (SpiffArena), empty when it correlates by business key and variables."""

    message_name = models.CharField(max_length=255)
    correlation = models.JSONField(default=dict, blank=True)
    instance = models.ForeignKey(
        ProcessInstance, related_name="message_subscriptions", on_delete=models.CASCADE
    )
    spiff_task_id = models.UUIDField()
    element_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["message_name"], name="message_subscription_name")]

    def __str__(self) -> str:
        return self.message_name


class SignalSubscription(models.Model):
    """A signal an instance waits for."""

    signal_name = models.CharField(max_length=255)
    instance = models.ForeignKey(
        ProcessInstance, related_name="signal_subscriptions", on_delete=models.CASCADE
    )
    spiff_task_id = models.UUIDField()
    element_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["signal_name"], name="signal_subscription_name")]

    def __str__(self) -> str:
        return self.signal_name


class StartTrigger(models.Model):
    """A message, signal or timer start event of a deployed process. Only the latest version
    of a process has active triggers; a timer trigger is also a schedule."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        SIGNAL = "signal", "Signal"
        TIMER = "timer", "Timer"

    definition = models.ForeignKey(
        ProcessDefinition, related_name="start_triggers", on_delete=models.CASCADE
    )
    element_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    event_name = models.CharField(max_length=255, blank=True)
    timer_expression = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True)
    # A timer schedule an operator paused: the beat does not start it until it is resumed.
    paused = models.BooleanField(default=False)
    next_due_at = models.DateTimeField(null=True, blank=True)
    # Starts left for a timer (None: no end).
    cycles_left = models.IntegerField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "element_id"], name="start_trigger_unique_element"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_due_at"],
                condition=Q(active=True, kind="timer"),
                name="start_trigger_due",
            ),
            models.Index(
                fields=["kind", "event_name"], condition=Q(active=True), name="start_trigger_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} start {self.event_name or self.timer_expression}"


class ScheduleEvent(models.Model):
    """The audit trail of timer start schedules: operators' pauses, resumes, runs and
    changes of the schedule."""

    trigger = models.ForeignKey(
        StartTrigger, null=True, blank=True, related_name="events", on_delete=models.SET_NULL
    )
    definition_key = models.CharField(max_length=255)
    element_id = models.CharField(max_length=255)
    type = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.definition_key}/{self.element_id}: {self.type}"


class DeliveryState(models.Model):
    """What an outbox row on its way to a receiver keeps about its delivery: the attempts
    made, when the next is due, a worker's lease on it, the last error, and when it arrived.
    Shared by `EventDelivery` (messages and signals) and `WebhookDelivery` (outbound
    webhooks), whose workers claim and retry them alike (engine/services/delivery_outbox.py).
    Each narrows `status` to choices of its own, "pending" (a worker's to deliver) among them."""

    PENDING = "pending"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class EventDelivery(DeliveryState):
    """A message or signal on its way: thrown by an instance for others, a signal broadcast
    to one waiting instance or start event, or an event kept while its target was suspended.
    Written in the sender's transaction, delivered by a worker (or by resume)."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        SIGNAL = "signal", "Signal"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DEFERRED = "deferred", "Deferred"  # its instance is suspended; resume delivers it
        DELIVERED = "delivered", "Delivered"
        UNMATCHED = "unmatched", "Unmatched"  # nobody waited for it
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=255)
    variables = models.JSONField(default=dict, blank=True)
    correlation_keys = models.JSONField(default=dict, blank=True)
    business_key = models.CharField(max_length=255, null=True, blank=True)
    source_instance = models.ForeignKey(
        ProcessInstance,
        null=True,
        blank=True,
        related_name="thrown_events",
        on_delete=models.SET_NULL,
    )
    # Whose action sent it (an API caller, or the person whose step made an instance throw
    # it); the receiving side runs on their behalf and an instance it starts is theirs.
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sent_events",
    )
    # Set when the delivery goes to one instance (known up front, or found by correlation).
    target_instance = models.ForeignKey(
        ProcessInstance,
        null=True,
        blank=True,
        related_name="incoming_events",
        on_delete=models.CASCADE,
    )
    start_trigger = models.ForeignKey(
        StartTrigger, null=True, blank=True, related_name="deliveries", on_delete=models.CASCADE
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    class Meta:
        verbose_name_plural = "event deliveries"
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="event_delivery_pending",
            ),
            models.Index(
                fields=["target_instance", "created_at"],
                condition=Q(status="deferred"),
                name="event_delivery_deferred",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.status})"


class InstanceEvent(models.Model):
    """The append-only audit trail of an instance."""

    class Type(models.TextChoices):
        STARTED = "started", "Started"
        TASK_CREATED = "task_created", "Task created"
        TASK_CLAIMED = "task_claimed", "Task claimed"
        TASK_UNCLAIMED = "task_unclaimed", "Task unclaimed"
        TASK_COMPLETED = "task_completed", "Task completed"
        TASK_CANCELLED = "task_cancelled", "Task cancelled"
        JOB_SUCCEEDED = "job_succeeded", "Job succeeded"
        JOB_FAILED = "job_failed", "Job failed"
        JOB_RETRIED = "job_retried", "Job retried"
        JOB_REQUEUED = "job_requeued", "Job requeued by an operator"
        JOB_CANCELLED = "job_cancelled", "Job cancelled by an operator"
        JOB_DUE_CHANGED = "job_due_changed", "Job's next attempt moved by an operator"
        JOB_AWAITING_CALLBACK = "job_awaiting_callback", "Call accepted, waiting for its callback"
        JOB_CALLBACK_RECEIVED = "job_callback_received", "Callback received"
        JOB_CALLBACK_TIMED_OUT = "job_callback_timed_out", "Callback timed out"
        EXTERNAL_TASK_LOCKED = "external_task_locked", "External task locked by a worker"
        EXTERNAL_TASK_UNLOCKED = "external_task_unlocked", "External task given back"
        TASK_RETRIED = "task_retried", "Task retried"
        SUSPENDED = "suspended", "Suspended"
        RESUMED = "resumed", "Resumed"
        VARIABLES_CHANGED = "variables_changed", "Variables changed"
        RESET = "reset", "Reset"
        SKIPPED = "skipped", "Skipped"
        MIGRATED = "migrated", "Migrated"
        INCIDENT = "incident", "Incident"
        TIMER_FIRED = "timer_fired", "Timer fired"
        MESSAGE_RECEIVED = "message_received", "Message received"
        SIGNAL_RECEIVED = "signal_received", "Signal received"
        EVENT_THROWN = "event_thrown", "Message or signal thrown"
        EVENT_DEFERRED = "event_deferred", "Event kept while suspended"
        CANCEL_REQUESTED = "cancel_requested", "Cancel requested: compensating completed work"
        TERMINATED = "terminated", "Terminated"
        COMPLETED = "completed", "Completed"
        DATA_STORE_WRITTEN = "data_store_written", "Data store written"
        WEBHOOK_RECEIVED = "webhook_received", "Webhook received"
        COMPENSATION_STARTED = "compensation_started", "Compensation started"

    instance = models.ForeignKey(ProcessInstance, related_name="events", on_delete=models.CASCADE)
    type = models.CharField(max_length=32, choices=Type.choices)
    element_id = models.CharField(max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["instance", "created_at"], name="instance_event_timeline")]

    def __str__(self) -> str:
        return f"{self.type} {self.element_id}"

    @property
    def description(self) -> str:
        """The event in words, as the history pages show it."""
        if self.type == self.Type.COMPENSATION_STARTED:
            payload = self.payload or {}
            activity = payload.get("activity_name") or self.element_id
            handler = payload.get("handler_name") or payload.get("handler") or ""
            return f"Compensating {activity} (handler {handler})"
        return str(self.get_type_display())


class OperationKey(models.Model):
    """A key that lets an operation happen once: an API client's `Idempotency-Key` (per user
    and endpoint) or the `message_id` of a message. It is reserved in the operation's own
    transaction, so it exists exactly when the operation's changes do."""

    MESSAGE_SCOPE = "message"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        help_text="Whose key it is; empty for message ids, which are global.",
    )
    scope = models.CharField(
        max_length=300,
        help_text="What the key is for: 'message', or a request's method and path.",
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the request; another request with the key is refused. Empty: "
        "not compared (a message id).",
    )
    outcome = models.JSONField(
        null=True,
        blank=True,
        help_text="What the operation did, given again to duplicates.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "scope", "key"], nulls_distinct=False, name="operation_key_unique"
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="operation_key_created")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


class ElementRun(models.Model):
    """One entry of an instance into a BPMN element (history, engine.services.element_history):
    written in bulk with the instance's state, deleted with the instance."""

    # The element type of the run that stands for the whole instance, not for an element.
    PROCESS_TYPE = "Process"

    id = models.BigAutoField(primary_key=True)
    # Found by instance through element_run_instance (its first column): no index of its own,
    # one less to write on every history write.
    instance = models.ForeignKey(
        ProcessInstance, related_name="element_runs", on_delete=models.CASCADE, db_index=False
    )
    definition = models.ForeignKey(ProcessDefinition, related_name="+", on_delete=models.CASCADE)
    spiff_task_id = models.UUIDField()
    element_id = models.CharField(max_length=255)
    element_type = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    # "" while open; completed, cancelled, error (a caught BPMN error) or incident.
    outcome = models.CharField(max_length=16, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    # History level "full": the variables the operation that ended the run changed.
    changes = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "spiff_task_id"],
                condition=Q(ended_at__isnull=True),
                name="element_run_one_open_per_task",
            )
        ]
        indexes = [
            models.Index(fields=["instance", "started_at"], name="element_run_instance"),
            models.Index(
                fields=["definition", "element_id", "-duration_ms"],
                condition=Q(duration_ms__isnull=False),
                name="element_run_slowest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.element_id} ({self.outcome or 'open'})"


class ElementRollup(models.Model):
    """Element runs of one definition's element per hour (incremented with every history
    write; `shard` spreads concurrent writers over several rows). `buckets` counts the ended
    runs per duration bucket (engine.services.element_history.DURATION_BUCKETS_MS)."""

    id = models.BigAutoField(primary_key=True)
    # Found by definition through element_rollup_key and element_rollup_hour.
    definition = models.ForeignKey(
        ProcessDefinition, related_name="+", on_delete=models.CASCADE, db_index=False
    )
    element_id = models.CharField(max_length=255)
    element_type = models.CharField(max_length=64)
    hour = models.DateTimeField()
    shard = models.SmallIntegerField(default=0)
    started = models.IntegerField(default=0)
    completed = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)
    incidents = models.IntegerField(default=0)
    ended = models.IntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    buckets = ArrayField(models.IntegerField(), default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "element_id", "hour", "shard"], name="element_rollup_key"
            )
        ]
        indexes = [models.Index(fields=["definition", "hour"], name="element_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.element_id} at {self.hour:%Y-%m-%d %H:00}"


class DataStoreEntry(models.Model):
    """The data of SpiffArena's data stores (engine.bpmn.data_stores), shared by every
    instance whose diagram declares a store of that kind and id. A JSON store is one row
    (empty keys); a KKV store a row per key pair; a typeahead store a row per search term of
    a category (the category is `store`, the term `key`)."""

    class Kind(models.TextChoices):
        JSON = "json", "JSON"
        KKV = "kkv", "Key-key-value"
        TYPEAHEAD = "typeahead", "Typeahead"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    store = models.CharField(max_length=255)
    key = models.CharField(max_length=255, blank=True, default="")
    secondary_key = models.CharField(max_length=255, blank=True, default="")
    value = models.JSONField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "store", "key", "secondary_key"], name="data_store_entry_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["kind", "store", "key"],
                name="data_store_entry_prefix",
                opclasses=["text_ops", "text_ops", "varchar_pattern_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.store} {self.key}/{self.secondary_key}"


class Connection(models.Model):
    """A named API that service tasks call (`connection="crm"`): where it is, how to sign in,
    and the limits every worker shares when calling it. Secret values are names of entries of
    the secret store, never the values. Plain-URL calls to the host of a connection's base URL
    share its limits."""

    class Auth(models.TextChoices):
        NONE = "none", "None"
        BEARER = "bearer", "Bearer token"
        BASIC = "basic", "Basic (username and password)"
        API_KEY = "api_key", "API key header"
        OAUTH2 = "oauth2", "OAuth2 client credentials"

    class Period(models.TextChoices):
        SECOND = "second", "per second"
        MINUTE = "minute", "per minute"

    name = models.SlugField(max_length=100, unique=True)
    base_url = models.URLField(max_length=2000)
    auth = models.CharField(max_length=16, choices=Auth.choices, default=Auth.NONE)
    # basic: the user name; oauth2: the client id. Plain text: neither is a secret.
    username = models.CharField(max_length=200, blank=True)
    # The secret store's entry holding the token, password, API key or client secret.
    secret_name = models.CharField(max_length=200, blank=True)
    api_key_header = models.CharField(max_length=100, blank=True, default="X-API-Key")
    token_url = models.URLField(max_length=2000, blank=True)
    scope = models.CharField(max_length=500, blank=True)
    default_headers = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.FloatField(default=10.0)
    connect_timeout_seconds = models.FloatField(null=True, blank=True)
    # Limits (empty: none). The rate limit counts calls started in any sliding window.
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_period = models.CharField(max_length=8, choices=Period.choices, default=Period.SECOND)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    # The circuit breaker opens after this many failures in a row, or when this percentage
    # of the calls of the window failed (with at least breaker_min_calls calls in it).
    breaker_failures = models.PositiveIntegerField(null=True, blank=True)
    breaker_error_rate = models.PositiveSmallIntegerField(null=True, blank=True)
    breaker_window_seconds = models.PositiveIntegerField(default=60)
    breaker_min_calls = models.PositiveIntegerField(default=10)
    breaker_cooldown_seconds = models.FloatField(default=30.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConnectionEvent(models.Model):
    """The audit trail of connections: changes, and breaker transitions (operators' and the
    breaker's own, the latter with no actor)."""

    connection = models.ForeignKey(
        Connection, null=True, blank=True, related_name="events", on_delete=models.SET_NULL
    )
    connection_name = models.CharField(max_length=100)
    type = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["connection_name", "created_at"], name="connection_event_log")
        ]

    def __str__(self) -> str:
        return f"{self.connection_name}: {self.type}"


class Batch(models.Model):
    """One operation applied to every instance a filter selected (issue 23): the targets are
    chosen once, at creation, as `BatchItem` rows, and Celery workers work through them in
    chunks, each instance in its own short transaction of the operation's service."""

    class Operation(models.TextChoices):
        SUSPEND = "suspend", "Suspend"
        RESUME = "resume", "Resume"
        TERMINATE = "terminate", "Terminate"
        CANCEL = "cancel", "Cancel with compensation"
        RETRY = "retry", "Retry incidents"
        MIGRATE = "migrate", "Migrate to a version"
        DELETE_FINISHED = "delete_finished", "Delete finished instances"
        SET_VARIABLES = "set_variables", "Set variables"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    operation = models.CharField(max_length=32, choices=Operation.choices)
    # The operation's arguments (a reason, a version, variables), as the service takes them.
    arguments = models.JSONField(default=dict, blank=True)
    # The instance filter as given (engine.selectors.batches.BatchFilter fields).
    filter = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="batches"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    # Items worked on so far; `skipped` and `failed` are among them, the rest succeeded.
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The last position a chunk has claimed: the next chunk starts after it.
    cursor = models.PositiveIntegerField(default=0)
    # Why the whole batch stopped (status failed), e.g. its actor is no operator any more.
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["status", "updated_at"], name="batch_status_updated")]

    def __str__(self) -> str:
        return f"{self.operation} batch {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.CANCELLED, self.Status.FAILED)


class BatchItem(models.Model):
    """One target instance of a batch and what the batch did to it. No foreign key to the
    instance: a batch's record outlives the instances it deleted."""

    class Outcome(models.TextChoices):
        PENDING = "", "Pending"
        OK = "ok", "Done"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    batch = models.ForeignKey(Batch, related_name="items", on_delete=models.CASCADE)
    # 1, 2, ... in the order of the instance ids: the key the chunks walk.
    position = models.PositiveIntegerField()
    instance_id = models.UUIDField()
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True, default="")
    message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="batch_item_position")
        ]
        indexes = [
            # The items not worked on yet: what a chunk takes, and abandoned chunks.
            models.Index(
                fields=["batch", "position"],
                condition=Q(outcome=""),
                name="batch_item_pending",
            ),
            # The skipped and failed items, for the progress answer and the items list.
            models.Index(
                fields=["batch", "position"],
                condition=Q(outcome__in=["skipped", "failed"]),
                name="batch_item_problems",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} {self.outcome or 'pending'}"


# -- webhooks ----------------------------------------------------------------------------------


class InboundWebhook(models.Model):
    """A URL (`/api/v1/webhooks/<name>/`) that outside systems post events to: each verified
    delivery starts a process or sends a message (engine/services/webhooks_in.py). Its
    signing secret lives in the secret store; only its name is kept here."""

    class Action(models.TextChoices):
        START = "start", "Start a process"
        MESSAGE = "message", "Send a message (correlate, or start at a message start event)"

    class SignatureStyle(models.TextChoices):
        GITHUB = "github", "GitHub: X-Hub-Signature-256: sha256=<hex>"
        TIMESTAMPED = "timestamped", "Stripe-like: t=<unix time>,v1=<hex>"

    name = models.SlugField(max_length=100, unique=True, help_text="The URL's last part.")
    action = models.CharField(max_length=16, choices=Action.choices)
    process_key = models.CharField(
        max_length=255, blank=True, help_text="For 'start': the process to start (latest version)."
    )
    message_name = models.CharField(
        max_length=255, blank=True, help_text="For 'message': the message the delivery sends."
    )
    correlation = models.JSONField(
        default=dict,
        blank=True,
        help_text="For 'message': correlation key -> dotted path into the payload, e.g. "
        '{"order_id": "order.id"}.',
    )
    business_key_path = models.CharField(
        max_length=255, blank=True, help_text="Dotted path into the payload of the business key."
    )
    payload_variable = models.CharField(
        max_length=100, default="webhook", help_text="The variable that receives the payload."
    )
    secret_name = models.CharField(
        max_length=255, help_text="The name of the signing secret in the secret store."
    )
    signature_style = models.CharField(
        max_length=16, choices=SignatureStyle.choices, default=SignatureStyle.GITHUB
    )
    signature_header = models.CharField(
        max_length=100,
        blank=True,
        help_text="Blank: X-Hub-Signature-256 (GitHub style) or Webhook-Signature (timestamped).",
    )
    tolerance_seconds = models.PositiveIntegerField(
        default=300, help_text="Timestamped style: how old (or early) a signature may be."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookSubscription(models.Model):
    """An outside URL that receives instance events (started, completed, incident, task
    created), signed with a secret from the secret store (engine/services/webhooks_out.py)."""

    class EventType(models.TextChoices):
        STARTED = "started", "Instance started"
        COMPLETED = "completed", "Instance completed"
        INCIDENT = "incident", "Incident"
        TASK_CREATED = "task_created", "Task created"

    name = models.CharField(max_length=255)
    url = models.URLField(max_length=2000)
    secret_name = models.CharField(
        max_length=255, help_text="The name of the signing secret in the secret store."
    )
    event_types = ArrayField(
        models.CharField(max_length=32, choices=EventType.choices),
        help_text="The instance events it receives.",
    )
    process_key = models.CharField(
        max_length=255, blank=True, help_text="Only instances of this process; blank: all."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [GinIndex(fields=["event_types"], name="webhook_subscription_events")]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(DeliveryState):
    """One event on its way to one subscription: written in the transaction of the operation
    that caused it, sent by a worker after commit, retried with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"  # gave up: retries exhausted, or refused by the policy

    subscription = models.ForeignKey(
        WebhookSubscription, related_name="deliveries", on_delete=models.CASCADE
    )
    event_type = models.CharField(max_length=32)
    instance = models.ForeignKey(
        ProcessInstance,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
        on_delete=models.SET_NULL,
    )
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_pending",
            ),
            models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.subscription_id} ({self.status})"


class DemoBooking(models.Model):
    """A booking (or payment) of the demo trip API (config/demo_api.py) that the trip_booking
    example calls. In a table, not in memory, so that every web process sees the same bookings
    and a test or a curl can look at them."""

    class Kind(models.TextChoices):
        FLIGHT = "flight", "Flight"
        HOTEL = "hotel", "Hotel"
        CAR = "car", "Car"
        PAYMENT = "payment", "Payment"

    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CANCELLED = "cancelled", "Cancelled"
        PAID = "paid", "Paid"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    trip = models.CharField(max_length=255)
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOOKED)
    # The Idempotency-Key of the call that made it: the same key books nothing more.
    booking_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # The Idempotency-Key of the call that cancelled it: the same key again is answered as
    # before; another one finds it cancelled already (409).
    cancel_key = models.CharField(max_length=255, blank=True)
    # Cancel calls received, repeated ones included (each cancels at most once).
    cancel_calls = models.PositiveIntegerField(default=0)
    # A slow supplier: the first answer to the cancellation comes this many seconds late
    # (after the booking is cancelled), to watch a repeated call.
    cancel_delay = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["trip", "created_at"], name="demo_booking_trip")]

    def __str__(self) -> str:
        return f"{self.kind} {self.trip} {self.status}"
