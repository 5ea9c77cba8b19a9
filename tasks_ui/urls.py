from django.urls import path

from . import views

app_name = "tasks_ui"

urlpatterns = [
    path("", views.home, name="home"),
    path("tasks/", views.inbox, name="inbox"),
]
