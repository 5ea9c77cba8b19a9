"""Seeing how processes run: Prometheus metrics, OpenTelemetry traces, log context.

Nothing here writes to the database or imports SpiffWorkflow; services, the job runner and
the sandbox call these helpers where the events happen (README, "Observing Baton").
"""
