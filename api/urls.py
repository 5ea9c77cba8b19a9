from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import views

app_name = "api"

urlpatterns = [
    path("v1/deployments/", views.DeploymentCreateView.as_view(), name="deployments"),
    path("v1/definitions/<str:key>/start/", views.StartInstanceView.as_view(), name="start"),
    path("v1/instances/<uuid:pk>/", views.InstanceDetailView.as_view(), name="instance-detail"),
    path("v1/instances/<uuid:pk>/retry/", views.InstanceRetryView.as_view(), name="retry"),
    path("v1/tasks/", views.TaskListView.as_view(), name="tasks"),
    path("v1/tasks/<uuid:pk>/complete/", views.TaskCompleteView.as_view(), name="task-complete"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]
