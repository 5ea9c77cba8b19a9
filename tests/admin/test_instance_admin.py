"""The operators' admin (issue 6): every repair through the admin views with Django's test
client, including the refusals; outcomes are checked in the database and on the page."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.services import start_instance, suspend_instance, terminate_instance
from engine.services.instance_store import load_workflow
from tests.engine.repair_diagrams import approval, approve
from tests.helpers import build_bpmn, deploy_document


@pytest.fixture
def operator(make_staff):
    return make_staff("olga_operator", "operators")


@pytest.fixture
def staff_outsider(make_staff):
    return make_staff("sam_staff", "designers")


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def two_step(db):
    deploy_document(approval())
    return start_instance(key="two_step", variables={"amount": 10})


def repair_url(instance: ProcessInstance, action: str) -> str:
    return reverse("admin:engine_processinstance_repair", args=[instance.pk, action])


def page_url(instance: ProcessInstance) -> str:
    return reverse("admin:engine_processinstance_change", args=[instance.pk])


def messages_of(response) -> list[str]:
    """The messages shown on the page a repair redirected to (posts use follow=True)."""
    return [str(m) for m in response.context["messages"]]


def confirmed(client: Client, instance: ProcessInstance, action: str, data: dict):
    """A repair that asks first: the post shows the confirmation page and changes nothing;
    its "yes" (the same data, confirmed) runs it and leads back to the instance page."""
    before = state_of(instance)
    asked = client.post(repair_url(instance, action), data)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert 'data-testid="confirmation"' in page and 'name="confirmed" value="yes"' in page
    assert state_of(instance) == before
    return client.post(repair_url(instance, action), {**data, "confirmed": "yes"}, follow=True)


def state_of(instance: ProcessInstance) -> tuple:
    instance.refresh_from_db()
    return (
        instance.status,
        instance.lock_version,
        instance.variables,
        instance.definition_id,
        InstanceEvent.objects.filter(instance=instance).count(),
    )


# --- list, page and permissions ------------------------------------------------------------


def test_the_list_shows_incidents_first_with_counts_per_status(operator_client, two_step):
    deploy_document(build_bpmn("divides", script="x = 1/0"))
    broken = start_instance(key="divides")
    response = operator_client.get(reverse("admin:engine_processinstance_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Incident: 1" in page and "Waiting: 1" in page
    assert page.index(str(broken.pk)[:8]) < page.index(str(two_step.pk)[:8])
    assert "divides" in page and "ZeroDivisionError" in page

    filtered = operator_client.get(
        reverse("admin:engine_processinstance_changelist"), {"status": "waiting"}
    )
    assert str(two_step.pk)[:8] in filtered.content.decode()
    assert str(broken.pk)[:8] not in filtered.content.decode()
    for term in (str(broken.pk), str(broken.pk)[:8]):
        found = operator_client.get(reverse("admin:engine_processinstance_changelist"), {"q": term})
        assert str(broken.pk)[:8] in found.content.decode()
        assert str(two_step.pk)[:8] not in found.content.decode()


def test_the_instance_page_shows_diagram_markers_tasks_and_trail(
    operator_client, two_step, approver
):
    approve(two_step, approver)
    response = operator_client.get(page_url(two_step))
    assert response.status_code == 200
    diagram = response.context["diagram"]
    assert diagram["completed"] == {"start": 1, "approve": 1, "decide": 1}
    assert diagram["active"] == ["pay"] and diagram["failed"] == []
    assert "<bpmn:definitions" in diagram["xml"]
    page = response.content.decode()
    assert 'id="baton-diagram-data"' in page
    assert "Reset to" in page and "Skip the task" in page
    assert "Task completed" in page  # the audit trail


def test_odd_ids_and_versions_in_the_url_are_not_errors(operator_client, two_step):
    bad_id = operator_client.get("/admin/engine/processinstance/not-a-uuid/change/")
    assert bad_id.status_code == 404
    assert operator_client.get(page_url(two_step), {"migrate_to": "\u00b2"}).status_code == 200
    assert operator_client.get(page_url(two_step), {"migrate_to": "9" * 40}).status_code == 200


def test_people_outside_the_operators_group_get_403(two_step, staff_outsider):
    client = Client()
    client.force_login(staff_outsider)
    before = state_of(two_step)
    assert client.get(reverse("admin:engine_processinstance_changelist")).status_code == 403
    assert client.get(page_url(two_step)).status_code == 403
    assert client.post(repair_url(two_step, "suspend")).status_code == 403
    assert client.post(repair_url(two_step, "terminate")).status_code == 403
    assert client.get(reverse("admin:engine_processinstance_incidents")).status_code == 403
    assert state_of(two_step) == before


# --- each repair ---------------------------------------------------------------------------


def test_reset_through_the_admin_then_the_instance_completes_the_new_way(
    operator_client, two_step, approver, operator
):
    approve(two_step, approver)
    asked = operator_client.post(repair_url(two_step, "reset"), {"element_id": "approve"})
    assert "Reset the instance to “Approve” (approve)?" in asked.content.decode()
    response = confirmed(operator_client, two_step, "reset", {"element_id": "approve"})
    assert response.redirect_chain[-1][1] == 302
    assert messages_of(response) == ["The instance was reset to “Approve” (approve)."]
    assert InstanceEvent.objects.get(instance=two_step, type="reset").actor == operator
    approve(two_step, approver, decision="reject")
    two_step.refresh_from_db()
    assert (two_step.status, two_step.variables["outcome"]) == ("completed", "rejected")


def test_invalid_json_variables_are_kept_with_the_error_and_nothing_changes(
    operator_client, two_step
):
    before = state_of(two_step)
    typed = '{"amount": 10, "note": "<b>mine</b>",'
    response = operator_client.post(repair_url(two_step, "variables"), {"variables": typed})
    assert response.status_code == 400
    [message] = messages_of(response)
    assert message.startswith("Nothing was changed. This is not valid JSON (line 1")
    form = response.context["variables_form"]
    assert form["variables"].value() == typed
    page = response.content.decode()
    # What the operator typed is back in the textarea (escaped), the error next to it.
    assert (
        "{&quot;amount&quot;: 10, &quot;note&quot;: &quot;&lt;b&gt;mine&lt;/b&gt;&quot;,</textarea>"
        in page
    )
    assert 'data-testid="variables-error"' in page and "This is not valid JSON" in page
    response = operator_client.post(repair_url(two_step, "variables"), {"variables": "[1, 2]"})
    assert "Give a JSON object" in messages_of(response)[0]
    assert response.context["variables_form"]["variables"].value() == "[1, 2]"
    response = operator_client.post(
        repair_url(two_step, "variables"), {"variables": '{"n": ' + "9" * 5000 + "}"}
    )
    assert "an integer of 5000 digits" in messages_of(response)[0]
    assert state_of(two_step) == before


def test_edit_variables_changes_adds_and_removes(operator_client, two_step, operator):
    response = operator_client.post(
        repair_url(two_step, "variables"),
        {"variables": json.dumps({"amount": 12, "note": "fixed"})},
        follow=True,
    )
    assert messages_of(response) == ["Saved 2 changed and 0 removed variable(s)."]
    two_step.refresh_from_db()
    assert two_step.variables == {"amount": 12, "note": "fixed"}
    operator_client.post(
        repair_url(two_step, "variables"), {"variables": '{"note": "fixed"}'}, follow=True
    )
    two_step.refresh_from_db()
    assert two_step.variables == {"note": "fixed"}
    event = InstanceEvent.objects.filter(instance=two_step, type="variables_changed").last()
    assert event is not None
    assert (event.actor, event.payload["removed"]) == (operator, ["amount"])


def test_retry_after_editing_variables_in_the_admin(operator_client, db):
    deploy_document(build_bpmn("divides_by", script="x = 1/y"))
    instance = start_instance(key="divides_by", variables={"y": 0})
    assert instance.status == "incident"
    response = operator_client.post(
        repair_url(instance, "variables"), {"variables": '{"y": 2}', "retry": "on"}, follow=True
    )
    assert messages_of(response) == ["The variables were saved and the incident retried."]
    instance.refresh_from_db()
    assert (instance.status, instance.variables["x"]) == ("waiting", 0.5)


def test_skip_through_the_admin(operator_client, two_step):
    task = next(t for t in load_workflow(two_step).get_tasks() if t.task_spec.bpmn_id == "approve")
    data = {"task_id": str(task.id), "variables": '{"decision": "approve"}'}
    asked = operator_client.post(repair_url(two_step, "skip"), data).content.decode()
    assert "Skip “Approve” (approve) without running it?" in asked
    assert "{&quot;decision&quot;: &quot;approve&quot;}" in asked  # the result, shown and kept
    response = confirmed(operator_client, two_step, "skip", data)
    assert messages_of(response) == ["The task was skipped."]
    assert two_step.human_tasks.get(element_id="pay").status == HumanTask.Status.OPEN


def test_suspend_resume_and_terminate_through_the_admin(operator_client, two_step):
    operator_client.post(repair_url(two_step, "suspend"), {"reason": "checking"}, follow=True)
    two_step.refresh_from_db()
    assert two_step.status == "suspended"
    assert InstanceEvent.objects.get(instance=two_step, type="suspended").payload["reason"] == (
        "checking"
    )
    operator_client.post(repair_url(two_step, "resume"), follow=True)
    two_step.refresh_from_db()
    assert two_step.status == "waiting"
    confirmed(operator_client, two_step, "terminate", {"reason": "duplicate"})
    two_step.refresh_from_db()
    assert two_step.status == "terminated"
    assert two_step.human_tasks.get().status == HumanTask.Status.CANCELLED


def test_an_action_on_a_completed_instance_says_why_and_changes_nothing(
    operator_client, two_step, approver
):
    approve(two_step, approver, decision="reject")
    before = state_of(two_step)
    for action, data in [
        ("reset", {"element_id": "approve", "confirmed": "yes"}),
        ("suspend", {}),
        ("terminate", {"confirmed": "yes"}),
        ("variables", {"variables": "{}"}),
        ("retry", {}),
    ]:
        response = operator_client.post(repair_url(two_step, action), data, follow=True)
        assert response.redirect_chain[-1][1] == 302
        [message] = messages_of(response)
        assert "completed" in message, (action, message)
    assert state_of(two_step) == before
    page = operator_client.get(page_url(two_step)).content.decode()
    assert "Reset to an earlier task" not in page  # no repair forms on a finished instance


def test_migrate_dry_run_and_real_run_through_the_admin(operator_client, two_step, approver):
    approve(two_step, approver)
    deploy_document(approval(extra_task=True))
    dry = operator_client.get(page_url(two_step), {"migrate_to": "2"})
    plan = dry.context["migration_plan"]
    assert plan.possible and plan.added == ["audit"]
    assert "Migrate to version 2" in dry.content.decode()
    two_step.refresh_from_db()
    assert two_step.definition.version == 1

    asked = operator_client.post(repair_url(two_step, "migrate"), {"version": "2"})
    assert "Migrate the instance from version 1 to version 2?" in asked.content.decode()
    assert "adds audit" in asked.content.decode()
    response = confirmed(operator_client, two_step, "migrate", {"version": "2"})
    assert messages_of(response) == ["The instance now runs version 2."]
    two_step.refresh_from_db()
    assert two_step.definition.version == 2


def test_migrate_refusal_is_shown_and_changes_nothing(operator_client, two_step, approver):
    approve(two_step, approver)
    deploy_document(approval(drop_pay=True))
    dry = operator_client.get(page_url(two_step), {"migrate_to": "2"})
    assert "has no counterpart in version 2" in dry.content.decode()
    before = state_of(two_step)
    for data in ({"version": "2"}, {"version": "2", "confirmed": "yes"}):
        response = operator_client.post(repair_url(two_step, "migrate"), data, follow=True)
        assert response.redirect_chain[-1][1] == 302  # no confirmation of a refused migration
        assert "no counterpart" in messages_of(response)[0]
    assert state_of(two_step) == before


# --- incidents, bulk actions, deletion -----------------------------------------------------


def test_incidents_page_groups_by_error_and_retries_a_group(operator_client, db):
    deploy_document(build_bpmn("divides_by", script="x = 1/y"))
    broken = [start_instance(key="divides_by", variables={"y": 0}) for _ in range(3)]
    page = operator_client.get(reverse("admin:engine_processinstance_incidents"))
    [group] = page.context["groups"]
    assert (group.definition, group.element_id, len(group.instances)) == (
        "divides_by",
        "prepare",
        3,
    )
    assert "Retry all 3" in page.content.decode()

    for instance in broken:
        operator_client.post(
            repair_url(instance, "variables"), {"variables": '{"y": 1}'}, follow=True
        )
    response = operator_client.post(
        reverse("admin:engine_processinstance_retry_group"),
        {"instance": [str(i.pk) for i in broken]},
        follow=True,
    )
    assert messages_of(response) == ["Retried 3 instance(s)."]
    assert set(ProcessInstance.objects.values_list("status", flat=True)) == {"waiting"}


def test_bulk_actions_on_the_list(operator_client, two_step):
    deploy_document(build_bpmn("divides_by", script="x = 1/y"))
    broken = start_instance(key="divides_by", variables={"y": 0})
    url = reverse("admin:engine_processinstance_changelist")
    response = operator_client.post(
        url,
        {
            "action": "suspend_selected",
            "_selected_action": [str(two_step.pk), str(broken.pk)],
            "reason": "maintenance",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][1] == 302
    assert set(ProcessInstance.objects.values_list("status", flat=True)) == {"suspended"}
    operator_client.post(
        url,
        {"action": "resume_selected", "_selected_action": [str(two_step.pk), str(broken.pk)]},
        follow=True,
    )
    broken.refresh_from_db()
    two_step.refresh_from_db()
    assert (two_step.status, broken.status) == ("waiting", "incident")
    response = operator_client.post(
        url, {"action": "retry_selected", "_selected_action": [str(two_step.pk)]}, follow=True
    )
    assert "not in incident" in " ".join(messages_of(response))


def test_delete_finished_instances_older_than_a_date(operator_client, operator, db):
    deploy_document(approval())
    old, recent, running = (start_instance(key="two_step") for _ in range(3))
    for instance in (old, recent):
        terminate_instance(instance_id=instance.pk, actor=operator, reason="done")
    ProcessInstance.objects.filter(pk=old.pk).update(
        completed_at=timezone.now() - timedelta(days=10)
    )
    cutoff = (timezone.now() - timedelta(days=5)).date().isoformat()
    response = operator_client.post(
        reverse("admin:engine_processinstance_delete_finished"),
        {"finished_before": cutoff},
        follow=True,
    )
    assert response.redirect_chain[-1][1] == 302
    assert messages_of(response) == ["Deleted 1 finished instance(s)."]
    assert set(ProcessInstance.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}


TIMER_WAIT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="Definitions_wait" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="wait_an_hour" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:intermediateCatchEvent id="an_hour">
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="an_hour" />
    <bpmn:sequenceFlow id="f2" sourceRef="an_hour" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_the_page_shows_what_the_instance_waits_for_and_skip_moves_past_a_timer(
    operator_client, db
):
    deploy_document(TIMER_WAIT)
    instance = start_instance(key="wait_an_hour")
    page = operator_client.get(page_url(instance))
    assert [w["type"] for w in page.context["waiting_for"]] == ["timer"]
    assert "timer due" in page.content.decode()

    [timer] = page.context["choices"]["skippable"]
    response = confirmed(operator_client, instance, "skip", {"task_id": timer.task_id})
    assert messages_of(response) == ["The task was skipped."]
    instance.refresh_from_db()
    assert instance.status == "completed"
    assert not instance.timers.filter(fired=False).exists()


# --- issue 18: what the admin shows and asks ------------------------------------------------


def test_the_list_puts_incidents_first_whatever_their_age(operator_client, db):
    deploy_document(build_bpmn("divides", script="x = 1/0"))
    broken = start_instance(key="divides")  # the oldest
    deploy_document(approval())
    waiting = [start_instance(key="two_step") for _ in range(2)]
    page = operator_client.get(reverse("admin:engine_processinstance_changelist"))
    shown = [row.pk for row in page.context["cl"].result_list]
    assert shown == [broken.pk, waiting[1].pk, waiting[0].pk]
    # A column the operator sorts by replaces that order.
    by_created = operator_client.get(reverse("admin:engine_processinstance_changelist"), {"o": "6"})
    assert next(row.pk for row in by_created.context["cl"].result_list) == broken.pk
    by_newest = operator_client.get(reverse("admin:engine_processinstance_changelist"), {"o": "-6"})
    assert next(row.pk for row in by_newest.context["cl"].result_list) == waiting[1].pk


def test_terminate_without_a_reason_is_refused_and_asked_again(operator_client, two_step):
    before = state_of(two_step)
    response = operator_client.post(
        repair_url(two_step, "terminate"), {"reason": "  ", "confirmed": "yes"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="confirmation"' in page and 'data-testid="confirm-error"' in page
    assert "Give a reason to terminate the instance" in page
    assert state_of(two_step) == before
    asked = operator_client.post(repair_url(two_step, "terminate"), {"reason": "typo'd <b>"})
    # The reason typed on the instance page is on the confirmation page, escaped.
    assert 'value="typo&#x27;d &lt;b&gt;"' in asked.content.decode()


def test_bulk_terminate_asks_first_and_needs_a_reason(operator_client, two_step):
    url = reverse("admin:engine_processinstance_changelist")
    selected = {"action": "terminate_selected", "_selected_action": [str(two_step.pk)]}
    asked = operator_client.post(url, {**selected, "reason": ""})
    assert asked.status_code == 200 and 'data-testid="confirmation"' in asked.content.decode()
    refused = operator_client.post(url, {**selected, "reason": "", "confirmed": "yes"}, follow=True)
    assert any("Give a reason" in m for m in messages_of(refused))
    two_step.refresh_from_db()
    assert two_step.status == "waiting"
    done = operator_client.post(
        url, {**selected, "reason": "duplicate", "confirmed": "yes"}, follow=True
    )
    assert messages_of(done) == ["Terminated 1 instance(s)."]
    two_step.refresh_from_db()
    assert two_step.status == "terminated"


NAMED_FAILURE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    id="Definitions_named" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="named_failure" isExecutable="true">
    <bpmn:startEvent id="start" name="Order in" />
    <bpmn:scriptTask id="Activity_0bn1eoq" name="Work out the &lt;total&gt;" scriptFormat="python">
      <bpmn:script>total = 1 / divisor</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="Activity_0bn1eoq" />
    <bpmn:sequenceFlow id="f2" sourceRef="Activity_0bn1eoq" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_elements_are_named_with_their_id_in_small_print(operator_client, db):
    deploy_document(NAMED_FAILURE)
    instance = start_instance(key="named_failure", variables={"divisor": 0})
    assert instance.status == "incident"
    shown = 'Work out the &lt;total&gt; <small class="baton-id">Activity_0bn1eoq</small>'
    page = operator_client.get(page_url(instance)).content.decode()
    assert f"Incident at {shown}" in page  # the incident box
    timeline = page[page.index('data-testid="timeline"') :]
    assert shown in timeline
    listing = operator_client.get(reverse("admin:engine_processinstance_changelist"))
    assert f"{shown}: ZeroDivisionError" in listing.content.decode()
    incidents = operator_client.get(reverse("admin:engine_processinstance_incidents"))
    assert shown in incidents.content.decode()


TIMESTAMP = re.compile(r"<time datetime=\"[^\"]+\">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)</time>")


def test_every_admin_page_writes_moments_one_way(operator_client, operator, two_step):
    deploy_document(TIMER_WAIT)
    waiting = start_instance(key="wait_an_hour")
    pages = [
        reverse("admin:engine_processinstance_changelist"),
        page_url(two_step),
        page_url(waiting),
        reverse("admin:engine_timer_changelist"),
    ]
    for url in pages:
        page = operator_client.get(url).content.decode()
        assert TIMESTAMP.search(page) or re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page), url
        shown = re.sub(r'datetime="[^"]*"', "", page.split("</header>", 1)[-1])
        for other in ("a.m.", "p.m.", "+00:00", "midnight", "noon"):
            assert other not in shown, (url, other)
    assert "Event deliveries" in operator_client.get(reverse("admin:index")).content.decode()


def test_bulk_terminate_refuses_more_than_it_can_list(operator_client, two_step, monkeypatch):
    from engine.admin import instances as instances_admin

    monkeypatch.setattr(instances_admin, "MAX_TERMINATED_AT_ONCE", 0)
    url = reverse("admin:engine_processinstance_changelist")
    selected = {"action": "terminate_selected", "_selected_action": [str(two_step.pk)]}
    refused = operator_client.post(
        url, {**selected, "reason": "duplicate", "confirmed": "yes"}, follow=True
    )
    assert any("terminate at most 0 at once" in m for m in messages_of(refused))
    two_step.refresh_from_db()
    assert two_step.status == "waiting"


# --- cancel with compensation (issue 24) ------------------------------------------------------


def test_cancel_with_compensation_asks_for_a_reason_then_terminates(operator_client, two_step):
    page = operator_client.get(page_url(two_step)).content.decode()
    assert "Cancel with compensation…" in page
    refused = operator_client.post(
        repair_url(two_step, "cancel"), {"reason": " ", "confirmed": "yes"}
    )
    assert refused.status_code == 400
    assert "Give a reason to cancel the instance" in refused.content.decode()
    assert state_of(two_step)[0] == "waiting"
    response = confirmed(operator_client, two_step, "cancel", {"reason": "customer withdrew"})
    # Nothing the instance completed has a compensation handler: it ends at once.
    assert messages_of(response) == [
        "The instance was cancelled: nothing it completed needed compensating."
    ]
    two_step.refresh_from_db()
    assert (two_step.status, two_step.cancel_reason) == ("terminated", "customer withdrew")
    assert two_step.human_tasks.get().status == HumanTask.Status.CANCELLED
    requested = InstanceEvent.objects.get(instance=two_step, type="cancel_requested")
    assert requested.actor is not None and requested.actor.username == "olga_operator"
    trail = operator_client.get(page_url(two_step)).content.decode()
    assert "Cancel requested: compensating completed work" in trail
    assert "Cancel with compensation…" not in trail  # finished: no repairs


def test_an_instance_being_cancelled_says_so_and_offers_no_second_cancel(operator_client, two_step):
    ProcessInstance.objects.filter(pk=two_step.pk).update(
        status="running", cancel_requested_at=timezone.now(), cancel_reason="order withdrawn"
    )
    page = operator_client.get(page_url(two_step)).content.decode()
    assert 'data-testid="cancelling"' in page and "order withdrawn" in page
    assert "Cancel with compensation…" not in page
    response = operator_client.post(
        repair_url(two_step, "cancel"), {"reason": "again", "confirmed": "yes"}, follow=True
    )
    assert any("already being cancelled" in m for m in messages_of(response))


def test_compensated_activities_have_their_own_marker_and_legend(operator_client, two_step):
    # What the engine writes as a compensation handler starts (engine.services, issue 24).
    InstanceEvent.objects.create(
        instance=two_step,
        type="compensation_started",
        element_id="approve",
        payload={"handler": "undo_approve", "reason": "cancel"},
    )
    response = operator_client.get(page_url(two_step))
    assert response.context["diagram"]["compensated"] == ["approve"]
    page = response.content.decode()
    assert 'data-testid="legend-compensated"' in page and "baton-key compensated" in page


def test_cancel_needs_the_csrf_token(operator, two_step):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    before = state_of(two_step)
    forged = client.post(repair_url(two_step, "cancel"), {"reason": "x", "confirmed": "yes"})
    assert forged.status_code == 403
    assert state_of(two_step) == before and two_step.cancel_requested_at is None
    # The instance page's own form carries the token, and with it the cancel runs.
    page = client.get(page_url(two_step)).content.decode()
    token = re.search(
        r"repair/cancel/\"><input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"([^\"]+)\"",
        page,
    )
    assert token is not None, page
    done = client.post(
        repair_url(two_step, "cancel"),
        {"reason": "x", "confirmed": "yes", "csrfmiddlewaretoken": token.group(1)},
    )
    assert done.status_code == 302
    assert state_of(two_step)[0] == "terminated"


def test_a_cancel_reason_is_shown_as_text(operator_client, two_step):
    script = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ProcessInstance.objects.filter(pk=two_step.pk).update(
        status="running", cancel_requested_at=timezone.now(), cancel_reason=script
    )
    InstanceEvent.objects.create(
        instance=two_step, type="cancel_requested", payload={"reason": script, "handlers": 1}
    )
    page = operator_client.get(page_url(two_step)).content.decode()
    assert script not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_a_suspended_instance_offers_no_cancel(operator_client, two_step, operator):
    suspend_instance(instance_id=two_step.pk, actor=operator)
    page = operator_client.get(page_url(two_step)).content.decode()
    assert "Cancel with compensation…" not in page and "Resume" in page
