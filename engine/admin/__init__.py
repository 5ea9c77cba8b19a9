"""The Django admin of the engine: what operators use to find and repair instances."""

from .events import EventDeliveryAdmin, StartTriggerAdmin, TimerAdmin
from .instances import ProcessInstanceAdmin

__all__ = ["EventDeliveryAdmin", "ProcessInstanceAdmin", "StartTriggerAdmin", "TimerAdmin"]
