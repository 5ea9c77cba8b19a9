from django.urls import path

from . import views

app_name = "processes"

urlpatterns = [
    path("", views.definition_list, name="list"),
    path("<str:key>/start/", views.start, name="start"),
]
