"""An operator's reason (suspend, terminate, cancel, and their batches): checked once here,
so that every entry point (API, admin, batch, a direct call) refuses the same input with the
same words, and the audit trail never stores something that is not short text."""

from engine.exceptions import InvalidInput

# The longest reason kept (the API's serializer and the admin's forms say the same or less).
MAX_REASON = 2000


def checked_reason(reason: object, action: str, *, required: bool) -> str:
    """The reason, stripped; `action` completes "Give a reason to ..." ("cancel the
    instance"). InvalidInput for anything but text of at most MAX_REASON characters, or for
    a blank one that is `required`."""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidInput(f"reason must be text of at most {MAX_REASON} characters.")
    reason = reason.strip()
    if required and not reason:
        raise InvalidInput(f"Give a reason to {action}; the audit trail keeps it.")
    return reason
