"""The shell commands `deploy`, `start`, `instances` and `tasks`, run as an operator would
(through argument parsing) against the same services and selectors the API uses."""

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from engine.management.commands.start import parse_value
from engine.models import HumanTask, ProcessInstance
from engine.services import claim_task, complete_human_task
from processes.models import Deployment, ProcessDefinition
from tests.helpers import EXPENSE_FILE, PARALLEL_FILE, build_bpmn, deploy_document, line_containing

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def run(*args: str) -> str:
    """Run a command through its argument parser; its stdout."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def start_expense(amount: str = "250", *extra: str) -> ProcessInstance:
    output = run(
        "start",
        "expense_approval",
        "--var",
        f"amount={amount}",
        "--var",
        "description=Team lunch",
        "--var",
        "requester=alice",
        *extra,
    )
    match = re.search(rf"Instance ({UUID})", output)
    assert match, output
    return ProcessInstance.objects.get(pk=match.group(1))


def table_rows(output: str) -> list[list[str]]:
    """The data rows of a table the commands print (header and rule left out)."""
    lines = output.strip().splitlines()
    assert len(lines) >= 2 and set(lines[1].replace(" ", "")) == {"-"}, output
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


# --- deploy ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deploy_prints_new_then_unchanged():
    first = run("deploy", str(EXPENSE_FILE), "--name", "Expenses from the shell")
    assert first.strip() == "expense_approval v1 (new)"
    deployment = Deployment.objects.get()
    assert deployment.name == "Expenses from the shell"
    assert deployment.deployed_by is None

    second = run("deploy", str(EXPENSE_FILE))
    assert second.strip() == "expense_approval v1 (unchanged)"
    assert ProcessDefinition.objects.filter(key="expense_approval").count() == 1
    assert Deployment.objects.count() == 1


@pytest.mark.django_db
def test_deploy_several_files_and_a_changed_one(tmp_path: Path):
    output = run("deploy", str(EXPENSE_FILE), str(PARALLEL_FILE))
    assert output.splitlines() == ["expense_approval v1 (new)", "parallel_review v1 (new)"]

    changed = tmp_path / "expense_approval.bpmn"
    changed.write_text(EXPENSE_FILE.read_text().replace("Approve expense", "Approve the expense"))
    output = run("deploy", str(changed), str(PARALLEL_FILE))
    assert output.splitlines() == ["expense_approval v2 (new)", "parallel_review v1 (unchanged)"]


@pytest.mark.django_db
def test_deploy_of_an_invalid_file_prints_each_problem_and_fails(tmp_path: Path):
    document = build_bpmn("broken", script="total = (1 +")
    path = tmp_path / "broken.bpmn"
    path.write_text(document)
    err = io.StringIO()

    with pytest.raises(CommandError, match="Nothing was deployed: 1 problem"):
        call_command("deploy", str(path), stdout=io.StringIO(), stderr=err)

    line = line_containing(document, 'id="prepare"')
    assert err.getvalue().startswith(
        f"broken.bpmn:{line}: prepare (Prepare): The script is not valid Python"
    ), err.getvalue()
    assert not ProcessDefinition.objects.exists()


@pytest.mark.django_db
def test_deploy_as_a_non_designer_is_refused(outsider):
    with pytest.raises(CommandError, match="designers"):
        run("deploy", str(EXPENSE_FILE), "--as", outsider.username)
    assert not ProcessDefinition.objects.exists()


@pytest.mark.django_db
def test_deploy_as_a_designer_records_the_user(designer):
    assert run("deploy", str(EXPENSE_FILE), "--as", designer.username).strip() == (
        "expense_approval v1 (new)"
    )
    assert Deployment.objects.get().deployed_by == designer


@pytest.mark.django_db
def test_deploy_as_an_unknown_user_or_of_a_missing_file_fails(tmp_path: Path):
    with pytest.raises(CommandError, match="There is no user 'nobody'"):
        run("deploy", str(EXPENSE_FILE), "--as", "nobody")
    missing = tmp_path / "missing.bpmn"
    with pytest.raises(CommandError, match=rf"{re.escape(str(missing))} does not exist"):
        run("deploy", str(missing))
    with pytest.raises(CommandError, match="is not a file"):
        run("deploy", str(tmp_path))
    assert not ProcessDefinition.objects.exists()


# --- start -------------------------------------------------------------------------------


def test_var_values_are_json_when_they_parse():
    assert parse_value("250") == 250
    assert parse_value("12.5") == 12.5
    assert parse_value("true") is True
    assert parse_value("null") is None
    assert parse_value('["a", 1]') == ["a", 1]
    assert parse_value("Team lunch") == "Team lunch"
    assert parse_value("007") == "007"
    assert parse_value("NaN") == "NaN"
    assert parse_value("") == ""


@pytest.mark.django_db
def test_start_stores_numbers_and_shows_the_open_task(expense_definition):
    output = run(
        "start",
        "expense_approval",
        "--var",
        "amount=250",
        "--var",
        "description=Team lunch",
        "--var",
        "requester=alice",
        "--business-key",
        "EXP-1",
    )
    instance = ProcessInstance.objects.get()
    assert instance.variables["amount"] == 250
    assert isinstance(instance.variables["amount"], int)
    assert instance.variables["description"] == "Team lunch"
    assert instance.variables["category"] == "medium"
    assert instance.business_key == "EXP-1"
    assert instance.started_by is None

    task = HumanTask.objects.get(instance=instance)
    assert f"Instance {instance.pk}" in output
    assert "expense_approval v1" in output
    assert f"status:       {instance.status}" in output
    assert "business key: EXP-1" in output
    assert "Open tasks:" in output
    assert f"{task.pk}  Approve expense [approve_expense] open (groups managers)" in output


@pytest.mark.django_db
def test_start_with_json_vars_var_overrides_and_version(expense_definition, approver):
    output = run(
        "start",
        "expense_approval",
        "--version",
        "1",
        "--as",
        approver.username,
        "--json-vars",
        json.dumps({"amount": 5, "description": "Pens", "requester": "bob"}),
        "--var",
        "requester=carol",
        "--var",
        "amount=7",
    )
    instance = ProcessInstance.objects.get()
    assert instance.variables["amount"] == 7
    assert instance.variables["requester"] == "carol"
    assert instance.started_by == approver
    assert str(instance.pk) in output


@pytest.mark.django_db
def test_start_of_an_unknown_key_or_version_fails_clearly(expense_definition):
    with pytest.raises(CommandError, match="no process definition with key 'no_such_process'"):
        run("start", "no_such_process")
    with pytest.raises(CommandError, match="no version 7 of process definition"):
        run("start", "expense_approval", "--version", "7")
    assert not ProcessInstance.objects.exists()


@pytest.mark.django_db
def test_start_reports_bad_input_and_failing_scripts(expense_definition):
    with pytest.raises(CommandError, match="--json-vars must be a JSON object"):
        run("start", "expense_approval", "--json-vars", "[1, 2]")
    with pytest.raises(CommandError, match="--json-vars is not valid JSON"):
        run("start", "expense_approval", "--json-vars", "{amount: 1}")
    with pytest.raises(CommandError, match="not of the form name=value"):
        run("start", "expense_approval", "--var", "amount")
    # The start form holds the command too: "lots" is no amount, and nothing starts.
    with pytest.raises(CommandError, match="amount"):
        run(
            "start",
            "expense_approval",
            "--var",
            "amount=lots",
            "--var",
            "description=Team lunch",
            "--var",
            "requester=alice",
        )
    assert not ProcessInstance.objects.exists()
    # A script that fails stops the instance there, in incident.
    deploy_document(build_bpmn("rated", script="total = amount * rate"))
    output = run("start", "rated", "--var", "amount=3")
    assert "status:       incident" in output
    assert "incident:     prepare: NameError: name 'rate' is not defined" in output
    instance = ProcessInstance.objects.get()
    assert instance.incident is not None
    assert (instance.status, instance.incident["element_id"]) == ("incident", "prepare")
    assert not instance.human_tasks.exists()


# --- instances ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_instances_lists_newest_first_and_filters(expense_definition, parallel_definition):
    first = start_expense("10", "--business-key", "EXP-1")
    second = start_expense("2000", "--business-key", "EXP-2")
    started = re.search(
        rf"Instance ({UUID})", run("start", "parallel_review", "--var", "document=contract.pdf")
    )
    assert started is not None
    review = ProcessInstance.objects.get(pk=started.group(1))

    output = run("instances")
    assert output.splitlines()[0].split() == [
        "ID",
        "PROCESS",
        "STATUS",
        "BUSINESS",
        "KEY",
        "CREATED",
    ]
    rows = table_rows(output)
    assert [row[0] for row in rows] == [str(review.pk), str(second.pk), str(first.pk)]
    assert rows[1][1:4] == ["expense_approval v1", second.status, "EXP-2"]
    assert rows[0][3] == "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0][4])

    by_key = table_rows(run("instances", "--definition", "expense_approval"))
    assert [row[0] for row in by_key] == [str(second.pk), str(first.pk)]
    by_business_key = table_rows(run("instances", "--business-key", "EXP-1"))
    assert [row[0] for row in by_business_key] == [str(first.pk)]
    by_status = table_rows(run("instances", "--status", first.status))
    assert len(by_status) == 3
    assert run("instances", "--status", "completed").strip() == "No instances."
    limited = table_rows(run("instances", "--limit", "1"))
    assert [row[0] for row in limited] == [str(review.pk)]
    with pytest.raises(CommandError):
        run("instances", "--limit", "0")
    with pytest.raises(CommandError):
        run("instances", "--status", "sleeping")


# --- tasks -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tasks_lists_tasks_and_filters_by_status(expense_definition, parallel_definition, approver):
    expense = start_expense("250", "--business-key", "EXP-1")
    run("start", "parallel_review", "--var", "document=contract.pdf")

    rows = table_rows(run("tasks"))
    assert sorted(row[1] for row in rows) == ["Approve expense", "Finance review", "Legal review"]
    expense_row = next(row for row in rows if row[1] == "Approve expense")
    task = HumanTask.objects.get(instance=expense)
    assert expense_row == [
        str(task.pk),
        "Approve expense",
        "expense_approval",
        "EXP-1",
        "-",
        "managers",
        "open",
    ]

    claim_task(task_id=task.pk, user=approver)
    claimed = table_rows(run("tasks", "--status", "claimed"))
    assert claimed == [
        [
            str(task.pk),
            "Approve expense",
            "expense_approval",
            "EXP-1",
            approver.username,
            "managers",
            "claimed",
        ]
    ]
    assert len(table_rows(run("tasks", "--status", "open"))) == 2
    assert run("tasks", "--status", "completed").strip() == "No tasks."

    complete_human_task(task_id=task.pk, user=approver, variables={"decision": "approve"})
    assert [row[0] for row in table_rows(run("tasks", "--status", "completed"))] == [str(task.pk)]
    assert len(table_rows(run("tasks"))) == 2
    assert len(table_rows(run("tasks", "--limit", "1"))) == 1


@pytest.mark.django_db
def test_tasks_for_a_user_shows_only_what_they_can_act_on(
    expense_definition, parallel_definition, make_user
):
    manager = make_user("mia_manager", "managers")
    nobody = make_user("ned_nogroups")
    start_expense()
    run("start", "parallel_review", "--var", "document=contract.pdf")

    mine = table_rows(run("tasks", "--user", manager.username))
    assert sorted(row[1] for row in mine) == ["Approve expense", "Finance review"]
    assert all(row[5] == "managers" for row in mine)
    assert run("tasks", "--user", nobody.username).strip() == "No tasks."

    task = HumanTask.objects.get(element_id="approve_expense")
    complete_human_task(task_id=task.pk, user=manager, variables={"decision": "reject"})
    assert [row[1] for row in table_rows(run("tasks", "--user", manager.username))] == [
        "Finance review"
    ]
    completed = table_rows(run("tasks", "--user", manager.username, "--status", "completed"))
    assert [row[0] for row in completed] == [str(task.pk)]
    assert run("tasks", "--user", nobody.username, "--status", "completed").strip() == "No tasks."
    with pytest.raises(CommandError, match="There is no user 'ghost'"):
        run("tasks", "--user", "ghost")
