from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Engine"

    def ready(self) -> None:
        # Baton's own connectors, then every installed app's `connectors` module.
        from .connectors import graphql, http, llm, slack, smtp, transform  # noqa: F401

        autodiscover_modules("connectors")
        # A new version's start events start instances (processes does not import the engine).
        from processes.signals import definition_deployed

        from .services.start_triggers import on_definition_deployed

        definition_deployed.connect(on_definition_deployed, dispatch_uid="engine.start_triggers")
        # Traces, when the OTEL_* environment asks for them (before the first request, so
        # that Django's instrumentation is among the middleware).
        from .observability.tracing import setup_tracing

        setup_tracing()
