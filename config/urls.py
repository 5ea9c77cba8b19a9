from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from config.observability import metrics_view

urlpatterns = [
    # Browsers ask for /favicon.ico on every page (the admin's too).
    path("favicon.ico", RedirectView.as_view(url=static("baton/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    # Prometheus scrapes here (config/observability.py says who may).
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("api.urls")),
    path("processes/", include("processes.urls")),
    path("", include("tasks_ui.urls")),
]

if settings.BATON_DEMO_API:
    urlpatterns.append(path("demo-api/", include("config.demo_api")))

# Under /api/ every error answers as problem+json (api/errors.py); elsewhere as Django does.
handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
