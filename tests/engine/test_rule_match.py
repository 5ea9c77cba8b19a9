"""A task rule asked of a row in memory (engine.rule_match) answers what the database answers
for that row: every rule of engine.permissions on tasks, for users of every kind, over tasks
with every combination of assignee, candidates, completer and status."""

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, F, OuterRef, Q

from engine import permissions
from engine.models import HumanTask
from engine.rule_match import matches
from engine.services.instances import start_instance
from processes.models import ProcessDefinition

pytestmark = pytest.mark.django_db

TASK_RULES: list[Callable[[Any], Q]] = [
    permissions.visible_tasks_q,
    permissions.candidate_tasks_q,
    permissions.assigned_tasks_q,
    permissions.unclaimed_candidate_tasks_q,
    permissions.actionable_tasks_q,
]


def _tasks(alice: User, bob: User) -> list[HumanTask]:
    started = start_instance(
        key="expense_approval",
        variables={"amount": 5, "description": "pens", "requester": "alice"},
        actor=alice,
    )
    (template,) = HumanTask.objects.filter(instance=started)
    rows = []
    for assignee, users, groups, completer, status in itertools.product(
        [None, "alice", "bob"],
        [[], ["alice"], ["bob", "alice"]],
        [[], ["managers"], ["sales", "legal"]],
        [None, alice, bob],
        [HumanTask.Status.OPEN, HumanTask.Status.CLAIMED, HumanTask.Status.COMPLETED],
    ):
        rows.append(
            HumanTask(
                instance=started,
                spiff_task_id=uuid.uuid4(),
                process_key=template.process_key,
                element_id=template.element_id,
                name=template.name,
                assignee=assignee,
                candidate_users=users,
                candidate_groups=groups,
                completed_by=completer,
                status=status,
            )
        )
    return HumanTask.objects.bulk_create(rows)


def test_every_task_rule_answers_in_memory_what_the_database_answers(
    make_user: Callable[..., User], example_definitions: dict[str, ProcessDefinition]
) -> None:
    alice = make_user("alice", "managers", "legal")
    bob = make_user("bob")
    boss = User.objects.create_superuser("boss", password="not-used-here")
    gone = make_user("gone", "managers")
    gone.is_active = False
    gone.save()
    tasks = _tasks(alice, bob)
    sizes = set()

    for user in (alice, bob, boss, gone, AnonymousUser()):
        for rule_of in TASK_RULES:
            rule = rule_of(user)
            in_database = set(
                HumanTask.objects.filter(rule, pk__in=[t.pk for t in tasks]).values_list(
                    "pk", flat=True
                )
            )
            in_memory = {task.pk for task in tasks if matches(rule, task)}
            assert in_memory == in_database, (user, rule_of.__name__)
            sizes.add(len(in_database))
    assert 0 in sizes and len(tasks) in sizes and len(sizes) > 5  # no rule was asked in vain


def test_values_are_compared_as_the_column_holds_them_and_empty_rules_as_django_drops_them(
    make_user: Callable[..., User], example_definitions: dict[str, ProcessDefinition]
) -> None:
    alice = make_user("alice", "managers")
    task = _tasks(alice, make_user("bob"))[0]
    rules = [
        Q(pk=str(task.pk)),
        ~Q(pk=str(task.pk)),
        Q(priority="50"),
        Q(Q(), Q(name="nothing like it"), _connector=Q.OR),
        ~Q(),
        Q(Q(), ~Q()),
        ~Q(pk__in=[]),
        Q(completed_by=alice),
        Q(instance=task.instance_id),
    ]
    for rule in rules:
        in_database = HumanTask.objects.filter(rule, pk=task.pk).exists()
        assert matches(rule, task) == in_database, rule


@pytest.mark.parametrize(
    "rule",
    [
        Q(name__icontains="X"),
        Q(assignee__contains="ba"),  # LIKE on text, not an array's elements
        Q(form__contains={"a": 1}),
        Q(assignee=F("name")),
        Q(pk__in=HumanTask.objects.all()),
        Q(Exists(HumanTask.objects.filter(pk=OuterRef("pk")))),
    ],
)
def test_a_rule_it_does_not_understand_is_refused_not_guessed(rule: Q) -> None:
    with pytest.raises(TypeError, match="not understood"):
        matches(rule, HumanTask(name="x", assignee="abc"))
