"""The Django admin of the engine: what operators use to find and repair instances."""
from .instances import ProcessInstanceAdmin

__all__ = ["ProcessInstanceAdmin"]
