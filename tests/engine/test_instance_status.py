"""The one rule that decides an instance's status (engine.services.instance_status)."""

import pytest

from engine.models import ProcessInstance
from engine.services.instance_status import decide_status

Status = ProcessInstance.Status


@pytest.mark.parametrize(
    ("current", "facts", "expected"),
    [
        # Writing the workflow: jobs in flight mean running, none mean waiting for the world.
        (Status.RUNNING, {"active_jobs": True}, Status.RUNNING),
        (Status.RUNNING, {}, Status.WAITING),
        (Status.WAITING, {"active_jobs": True}, Status.RUNNING),
        # A failed task or a dead job opens an incident; an incident stays until it is cleared.
        (Status.RUNNING, {"incident": True, "active_jobs": True}, Status.INCIDENT),
        (Status.INCIDENT, {"incident": True}, Status.INCIDENT),
        (Status.INCIDENT, {"active_jobs": True}, Status.RUNNING),
        # Completion wins over everything but a termination.
        (Status.INCIDENT, {"completed": True, "incident": True}, Status.COMPLETED),
        (Status.SUSPENDED, {"completed": True}, Status.COMPLETED),
        (Status.TERMINATED, {"completed": True}, Status.TERMINATED),
        # Cancelled with compensation: it runs (or fails) as usual while the handlers work,
        # and its workflow's end terminates it.
        (Status.RUNNING, {"active_jobs": True, "cancelling": True}, Status.RUNNING),
        (Status.RUNNING, {"incident": True, "cancelling": True}, Status.INCIDENT),
        (Status.RUNNING, {"completed": True, "cancelling": True}, Status.TERMINATED),
        (Status.INCIDENT, {"completed": True, "cancelling": True}, Status.TERMINATED),
        # A suspended instance keeps still, even when an incident opens, until it is resumed.
        (Status.SUSPENDED, {"incident": True}, Status.SUSPENDED),
        (Status.SUSPENDED, {"active_jobs": True}, Status.SUSPENDED),
        (Status.SUSPENDED, {"resuming": True, "incident": True}, Status.INCIDENT),
        (Status.SUSPENDED, {"resuming": True, "active_jobs": True}, Status.RUNNING),
        (Status.SUSPENDED, {"resuming": True}, Status.WAITING),
    ],
)
def test_status_follows_from_the_workflow_its_jobs_and_incidents(current, facts, expected):
    assert decide_status(current, **facts) == expected
