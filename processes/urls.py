from django.urls import path

from . import modeler_views, views

app_name = "processes"

urlpatterns = [
    path("", views.definition_list, name="list"),
    path("new/", modeler_views.new, name="new"),
    path("modeler/save/", modeler_views.save, name="save"),
    path("<str:key>/", views.detail, name="detail"),
    path("<str:key>/insights/", views.insights, name="insights"),
    path("<str:key>/edit/", modeler_views.edit, name="edit"),
    path("<str:key>/start/", views.start, name="start"),
    path("<str:key>/download/", views.download, name="download"),
    path("<str:key>/v<int:version>/thumbnail.svg", views.thumbnail, name="thumbnail"),
]
