"""The Django admin of the engine: what operators use to find and repair instances."""

from django.contrib import admin

from .batches import BatchAdmin
from .connections import ConnectionAdmin
from .events import EventDeliveryAdmin, StartTriggerAdmin, TimerAdmin
from .instances import ProcessInstanceAdmin
from .jobs import ServiceJobAdmin
from .webhooks import InboundWebhookAdmin, WebhookDeliveryAdmin, WebhookSubscriptionAdmin

admin.site.site_header = "Baton operations"
admin.site.site_title = "Baton operations"
admin.site.index_title = "Instances, incidents and events"
# The app list beside every page would take a quarter of a laptop screen from the instance
# list's columns; the breadcrumbs and the home page lead to the same places.
admin.site.enable_nav_sidebar = False

__all__ = [
    "BatchAdmin",
    "ConnectionAdmin",
    "EventDeliveryAdmin",
    "InboundWebhookAdmin",
    "ProcessInstanceAdmin",
    "ServiceJobAdmin",
    "StartTriggerAdmin",
    "TimerAdmin",
    "WebhookDeliveryAdmin",
    "WebhookSubscriptionAdmin",
]
