from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Engine"

    def ready(self) -> None:
        # Baton's own connectors, then every installed app's `connectors` module.
        from .connectors import http  # noqa: F401

        autodiscover_modules("connectors")
