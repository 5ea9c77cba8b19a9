"""Two people completing the two parallel reviews of one instance at the same moment.

The instance row lock must serialise the two completions, so that neither overwrites the
other's state: every instance ends completed, with both reviews' data."""

import threading

import pytest
from django.db import connection

from engine.models import HumanTask, InstanceEvent, ProcessInstance
from engine.services import complete_human_task, start_instance

ROUNDS = 50

pytestmark = pytest.mark.django_db(transaction=True)


def complete_in_thread(barrier, task_id, user, variables, errors) -> None:
    try:
        barrier.wait()
        complete_human_task(task_id=task_id, user=user, variables=variables)
    except Exception as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        connection.close()


def test_parallel_reviews_completed_at_the_same_moment(parallel_definition, legal_user, approver):
    instance_ids = []
    for round_number in range(ROUNDS):
        instance = start_instance(
            key="parallel_review", variables={"document": f"contract-{round_number}"}
        )
        instance_ids.append(instance.pk)
        tasks = dict(instance.human_tasks.values_list("element_id", "pk"))
        assert set(tasks) == {"legal_review", "finance_review"}

        barrier = threading.Barrier(2, timeout=30)
        errors: list[Exception] = []
        threads = [
            threading.Thread(
                target=complete_in_thread,
                args=(
                    barrier,
                    tasks["legal_review"],
                    legal_user,
                    {"legal_ok": True, "legal_notes": f"legal {round_number}"},
                    errors,
                ),
            ),
            threading.Thread(
                target=complete_in_thread,
                args=(
                    barrier,
                    tasks["finance_review"],
                    approver,
                    {"finance_ok": True, "finance_notes": f"finance {round_number}"},
                    errors,
                ),
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a completion hung"
        assert errors == [], f"round {round_number}: {errors!r}"

    for number, instance in enumerate(
        ProcessInstance.objects.filter(pk__in=instance_ids).order_by("created_at")
    ):
        assert instance.status == ProcessInstance.Status.COMPLETED, instance.pk
        variables = instance.variables
        assert variables["document"] == f"contract-{number}"
        assert variables["legal_notes"] == f"legal {number}"
        assert variables["finance_notes"] == f"finance {number}"
        assert variables["legal_ok"] is True
        assert variables["finance_ok"] is True
        assert variables["approved"] is True
        statuses = dict(instance.human_tasks.values_list("element_id", "status"))
        assert statuses == {"legal_review": "completed", "finance_review": "completed"}
        types = list(InstanceEvent.objects.filter(instance=instance).values_list("type", flat=True))
        assert types.count("task_completed") == 2
        assert types.count("completed") == 1
        assert types[-1] == "completed"
    assert HumanTask.objects.filter(status__in=HumanTask.ACTIVE_STATUSES).count() == 0


def test_one_task_completed_twice_at_the_same_moment_is_completed_once(
    expense_definition, approver, approver2
):
    """The task row is read after its instance's lock is held: the second completion sees
    the first one's outcome (a 409), never the task as it was before."""
    for round_number in range(ROUNDS // 5):
        instance = start_instance(
            key="expense_approval",
            variables={"amount": 50, "description": f"pens {round_number}", "requester": "me"},
        )
        (task_id,) = instance.human_tasks.values_list("pk", flat=True)
        barrier = threading.Barrier(2, timeout=30)
        errors: list[Exception] = []
        threads = [
            threading.Thread(
                target=complete_in_thread,
                args=(barrier, task_id, user, {"decision": decision}, errors),
            )
            for user, decision in ((approver, "approve"), (approver2, "reject"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a completion hung"

        assert [type(error).__name__ for error in errors] == ["Conflict"]
        instance.refresh_from_db()
        assert instance.status == ProcessInstance.Status.COMPLETED
        task = HumanTask.objects.get(pk=task_id)
        assert task.submitted_data is not None
        assert instance.variables["decision"] == task.submitted_data["decision"]
        completions = InstanceEvent.objects.filter(instance=instance, type="task_completed")
        assert completions.count() == 1
