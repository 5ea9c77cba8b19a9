from django.urls import path

from . import views

app_name = "tasks_ui"

urlpatterns = [
    path("", views.home, name="home"),
    path("tasks/", views.inbox, name="inbox"),
    path("tasks/<uuid:task_id>/", views.task_detail, name="task"),
    path("tasks/<uuid:task_id>/claim/", views.claim, name="claim"),
    path("tasks/<uuid:task_id>/unclaim/", views.unclaim, name="unclaim"),
    path("instances/", views.my_instances, name="instances"),
    path("instances/<uuid:instance_id>/", views.instance_detail, name="instance"),
]
