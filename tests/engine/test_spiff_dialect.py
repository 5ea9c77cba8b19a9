"""SpiffArena diagrams from the shared corpus: lanes, JSON-schema forms and get_current_user()."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.helpers import SPIFF_EXAMPLES

ROLES = SPIFF_EXAMPLES / "1-basic-concepts" / "1-6-roles"


def deploy_folder(folder: Path) -> None:
    files = [
        UploadedFile(p.name, p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.suffix in {".bpmn", ".json", ".dmn"}
        and not p.name.startswith("test_")
        and p.name != "process_model.json"
    ]
    deploy(name=folder.name, files=files, actor=None)


@pytest.mark.django_db
def test_lanes_forms_and_current_user_in_a_spiffarena_model(shared_dir: Path) -> None:
    deploy_folder(shared_dir / ROLES)
    ann = User.objects.create_user("ann", email="ann@example.invalid")
    ann.groups.add(Group.objects.create(name="staff"))
    instance = start_instance(key="Process_9wllce2", actor=ann)

    # An unnamed lane names no group, so the first task belongs to whoever started.
    intro = instance.human_tasks.get(status="claimed")
    assert (intro.element_id, intro.assignee) == ("Activity_0cya923", "ann")
    complete_human_task(task_id=intro.id, user=ann)

    describe = instance.human_tasks.get(element_id="Activity_121gfc7")
    assert describe.form["type"] == "json-schema"
    assert "properties" in describe.form["schema"]
    complete_human_task(
        task_id=describe.id,
        user=ann,
        variables={"location": "Jamaica", "season": "Summer", "activites": "Wild Life"},
    )

    # The approval's pre-script names the lane owners with get_current_user().
    approve = instance.human_tasks.get(element_id="Activity_041y60h")
    assert approve.lane == "Vacation Approver"
    assert approve.candidate_users == ["ann"]
    assert approve.candidate_groups == []
    complete_human_task(
        task_id=approve.id,
        user=ann,
        variables={"approved": "approved", "explanation": "Interesting Activity"},
    )

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["requested_by"] == "ann"
    assert instance.variables["lane_owners"] == {"Vacation Approver": ["ann"]}
    assert instance.variables["location"] == "Jamaica"
    assert HumanTask.objects.filter(instance=instance, status="completed").count() == 3
