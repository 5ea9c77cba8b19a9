from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from .docs import SwaggerDocsView
from .views import (
    batches,
    connections,
    definitions,
    deployments,
    events,
    external_tasks,
    insights,
    instances,
    job_callbacks,
    jobs,
    repairs,
    schedules,
    tasks,
    webhooks,
)

app_name = "api"

urlpatterns = [
    path("v1/deployments/", deployments.DeploymentCreateView.as_view(), name="deployments"),
    path(
        "v1/deployments/validate/",
        deployments.DeploymentValidateView.as_view(),
        name="deployments-validate",
    ),
    path("v1/definitions/", definitions.DefinitionListView.as_view(), name="definitions"),
    path(
        "v1/definitions/<str:key>/",
        definitions.DefinitionDetailView.as_view(),
        name="definition-detail",
    ),
    path(
        "v1/definitions/<str:key>/versions/",
        definitions.DefinitionVersionsView.as_view(),
        name="definition-versions",
    ),
    path(
        "v1/definitions/<str:key>/xml/",
        definitions.DefinitionXmlView.as_view(),
        name="definition-xml",
    ),
    path(
        "v1/definitions/<str:key>/statistics/",
        insights.DefinitionStatisticsView.as_view(),
        name="definition-statistics",
    ),
    path("v1/metrics/summary/", insights.MetricsSummaryView.as_view(), name="metrics-summary"),
    path("v1/definitions/<str:key>/start/", definitions.StartInstanceView.as_view(), name="start"),
    path("v1/instances/", instances.InstanceListView.as_view(), name="instances"),
    path("v1/instances/<uuid:pk>/", instances.InstanceDetailView.as_view(), name="instance-detail"),
    path(
        "v1/instances/<uuid:pk>/history/",
        instances.InstanceHistoryView.as_view(),
        name="instance-history",
    ),
    path(
        "v1/instances/<uuid:pk>/suspend/", instances.InstanceSuspendView.as_view(), name="suspend"
    ),
    path("v1/instances/<uuid:pk>/resume/", instances.InstanceResumeView.as_view(), name="resume"),
    path(
        "v1/instances/<uuid:pk>/terminate/",
        instances.InstanceTerminateView.as_view(),
        name="terminate",
    ),
    path("v1/instances/<uuid:pk>/cancel/", instances.InstanceCancelView.as_view(), name="cancel"),
    path("v1/instances/<uuid:pk>/retry/", instances.InstanceRetryView.as_view(), name="retry"),
    path(
        "v1/instances/<uuid:pk>/variables/",
        instances.InstanceVariablesView.as_view(),
        name="variables",
    ),
    path("v1/instances/<uuid:pk>/reset/", repairs.InstanceResetView.as_view(), name="reset"),
    path("v1/instances/<uuid:pk>/skip/", repairs.InstanceSkipView.as_view(), name="skip"),
    path("v1/instances/<uuid:pk>/migrate/", repairs.InstanceMigrateView.as_view(), name="migrate"),
    path("v1/batches/", batches.BatchListView.as_view(), name="batches"),
    path("v1/batches/<uuid:pk>/", batches.BatchDetailView.as_view(), name="batch-detail"),
    path("v1/batches/<uuid:pk>/items/", batches.BatchItemListView.as_view(), name="batch-items"),
    path("v1/batches/<uuid:pk>/cancel/", batches.BatchCancelView.as_view(), name="batch-cancel"),
    path("v1/messages/", events.MessageView.as_view(), name="messages"),
    path("v1/signals/", events.SignalView.as_view(), name="signals"),
    path("v1/tasks/", tasks.TaskListView.as_view(), name="tasks"),
    path("v1/tasks/<uuid:pk>/", tasks.TaskDetailView.as_view(), name="task-detail"),
    path("v1/tasks/<uuid:pk>/claim/", tasks.TaskClaimView.as_view(), name="task-claim"),
    path("v1/tasks/<uuid:pk>/unclaim/", tasks.TaskUnclaimView.as_view(), name="task-unclaim"),
    path("v1/tasks/<uuid:pk>/complete/", tasks.TaskCompleteView.as_view(), name="task-complete"),
    path(
        "v1/external-tasks/fetch-and-lock/",
        external_tasks.FetchAndLockView.as_view(),
        name="external-tasks-fetch",
    ),
    path(
        "v1/external-tasks/<uuid:pk>/complete/",
        external_tasks.CompleteView.as_view(),
        name="external-task-complete",
    ),
    path(
        "v1/external-tasks/<uuid:pk>/failure/",
        external_tasks.FailureView.as_view(),
        name="external-task-failure",
    ),
    path(
        "v1/external-tasks/<uuid:pk>/bpmn-error/",
        external_tasks.BpmnErrorView.as_view(),
        name="external-task-bpmn-error",
    ),
    path(
        "v1/external-tasks/<uuid:pk>/extend-lock/",
        external_tasks.ExtendLockView.as_view(),
        name="external-task-extend-lock",
    ),
    path(
        "v1/external-tasks/<uuid:pk>/unlock/",
        external_tasks.UnlockView.as_view(),
        name="external-task-unlock",
    ),
    path(
        "v1/jobs/<uuid:pk>/callback/",
        job_callbacks.JobCallbackView.as_view(),
        name="job-callback",
    ),
    path("v1/webhooks/<slug:name>/", webhooks.WebhookReceiveView.as_view(), name="webhook-receive"),
    path(
        "v1/inbound-webhooks/", webhooks.InboundWebhookListView.as_view(), name="inbound-webhooks"
    ),
    path(
        "v1/inbound-webhooks/<int:pk>/",
        webhooks.InboundWebhookDetailView.as_view(),
        name="inbound-webhook-detail",
    ),
    path(
        "v1/webhook-subscriptions/",
        webhooks.SubscriptionListView.as_view(),
        name="webhook-subscriptions",
    ),
    path(
        "v1/webhook-subscriptions/<int:pk>/",
        webhooks.SubscriptionDetailView.as_view(),
        name="webhook-subscription-detail",
    ),
    path(
        "v1/webhook-subscriptions/<int:pk>/deliveries/",
        webhooks.SubscriptionDeliveriesView.as_view(),
        name="webhook-subscription-deliveries",
    ),
    path("v1/jobs/", jobs.JobListView.as_view(), name="jobs"),
    path("v1/jobs/<uuid:pk>/requeue/", jobs.JobRequeueView.as_view(), name="job-requeue"),
    path("v1/jobs/<uuid:pk>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("v1/jobs/<uuid:pk>/due/", jobs.JobDueView.as_view(), name="job-due"),
    path("v1/queues/", jobs.QueueListView.as_view(), name="queues"),
    path("v1/schedules/", schedules.ScheduleListView.as_view(), name="schedules"),
    path("v1/schedules/<int:pk>/", schedules.ScheduleDetailView.as_view(), name="schedule-detail"),
    path(
        "v1/schedules/<int:pk>/pause/", schedules.SchedulePauseView.as_view(), name="schedule-pause"
    ),
    path(
        "v1/schedules/<int:pk>/resume/",
        schedules.ScheduleResumeView.as_view(),
        name="schedule-resume",
    ),
    path("v1/schedules/<int:pk>/run/", schedules.ScheduleRunView.as_view(), name="schedule-run"),
    path("v1/connections/", connections.ConnectionListView.as_view(), name="connections"),
    path(
        "v1/connections/<slug:name>/",
        connections.ConnectionDetailView.as_view(),
        name="connection-detail",
    ),
    path(
        "v1/connections/<slug:name>/health/",
        connections.ConnectionHealthView.as_view(),
        name="connection-health",
    ),
    path(
        "v1/connections/<slug:name>/breaker/",
        connections.ConnectionBreakerView.as_view(),
        name="connection-breaker",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the page's CSP allows no inline one.
    # People who are not signed in are sent to the login page (api/docs.py).
    path(
        "docs/",
        SwaggerDocsView.as_view(url_name="api:schema", template_name="api/swagger_ui.html"),
        name="docs",
    ),
]
