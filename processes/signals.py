"""What `processes` tells the apps above it (the engine) about deployments, without
importing them: the engine connects its receivers in `EngineConfig.ready`."""

from django.dispatch import Signal

# Sent with `definition=` inside the deployment's transaction when a new version of a
# process becomes its latest; a receiver that raises undoes the deployment.
definition_deployed = Signal()
