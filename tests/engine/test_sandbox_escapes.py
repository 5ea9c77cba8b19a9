"""Escapes and bombs (tests/engine/sandbox_escapes.py), each through a real deployed diagram:
on the web path (started through the REST API, the script runs in the web process's sandbox)
and on the worker path (the script follows a service task, so a Celery worker runs it).

Every one ends in an incident at the script task that says what was refused; nothing the
script built is kept, no file appears, nothing of the engine's environment is in the
instance, and the processes that ran it serve the next instance.
"""

import os
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from django.conf import settings

from engine.models import ProcessInstance
from engine.services import start_instance
from tests.engine.sandbox_escapes import CANARY, ESCAPES, Escape
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import TEST_SECRET, wait_until
from tests.helpers import deploy_document

TIME_LIMIT = "0.5"
# On the worker path every case runs at once on a busy machine: the size-bound cases need time
# to reach their size limit before the time limit stops them.
WORKER_TIME_LIMIT = "2"
START_VARIABLES = {"order": {"amount": 12}}


def script_task(script: str) -> str:
    return (
        f'    <bpmn:scriptTask id="work" name="Work" scriptFormat="python">'
        f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>\n"
    )


def with_time_limit(document: str, limit: str = TIME_LIMIT) -> str:
    """The process's own scriptTimeLimit, so that runaway cases end quickly."""
    return document.replace(
        'isExecutable="true">',
        'isExecutable="true"><bpmn:extensionElements><camunda:properties>'
        f'<camunda:property name="scriptTimeLimit" value="{limit}" />'
        "</camunda:properties></bpmn:extensionElements>",
        1,
    )


def key_of(case: Escape, path: str) -> str:
    return f"escape_{path}_{case.id}"


def assert_contained(instance: ProcessInstance, case: Escape, secrets: list[str]) -> None:
    assert instance.status == ProcessInstance.Status.INCIDENT, (case.id, instance.status)
    assert instance.incident is not None
    assert instance.incident["element_id"] == "work", instance.incident
    error = instance.incident["error"]
    assert case.says in error, (case.id, error)
    assert "leaked" not in instance.variables and "x" not in instance.variables, case.id
    stored = repr(instance.variables) + repr(instance.incident) + repr(instance.state)
    for secret in secrets:
        assert secret not in stored, case.id
    assert not Path(CANARY).exists(), case.id


@pytest.fixture(autouse=True)
def _engine_secret(monkeypatch):
    """A secret in the environment of the process that runs the engine."""
    monkeypatch.setenv("BATON_TEST_SECRET", TEST_SECRET)


def engine_secrets() -> list[str]:
    return [TEST_SECRET, settings.SECRET_KEY, os.environ.get("DATABASE_URL") or "postgres://"]


# --- the web path ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("case", ESCAPES, ids=[case.id for case in ESCAPES])
def test_an_escape_on_the_web_path_is_an_incident(case, api_client_for, make_user):
    designer = make_user("dora", "designers")
    key = key_of(case, "web")
    deploy_document(with_time_limit(sequence(key, [script_task(case.script)])))

    started = api_client_for(designer).post(
        f"/api/v1/definitions/{key}/start/",
        {"variables": START_VARIABLES},
        format="json",
    )

    assert started.status_code == 201, started.content
    instance = ProcessInstance.objects.get(pk=started.json()["id"])
    assert_contained(instance, case, engine_secrets())
    assert instance.variables == START_VARIABLES

    # The web process and its sandbox serve the next instance.
    deploy_document(sequence("after_escape", [script_task("total = order['amount'] * 2")]))
    after = start_instance(key="after_escape", variables=START_VARIABLES)
    assert (after.status, after.variables["total"]) == ("completed", 24)


def test_there_are_at_least_sixty_cases():
    assert len(ESCAPES) >= 60
    assert len({case.id for case in ESCAPES}) == len(ESCAPES)


# --- the worker path -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_escape_on_the_worker_path_is_an_incident(celery_workers, fake_api):
    """One instance per case, all at once: a service task (the job runs on a worker), then the
    script, which the worker runs when it applies the job's result."""
    pool = {p.pid for p in celery_workers.pool_children()}
    instances = {}
    for case in ESCAPES:
        key = key_of(case, "worker")
        deploy_document(
            with_time_limit(
                sequence(
                    key,
                    [
                        service_task("call", 'api + "/ping"'),
                        script_task(case.script),
                    ],
                ),
                WORKER_TIME_LIMIT,
            )
        )
        instances[case] = start_instance(
            key=key,
            variables={**START_VARIABLES, "api": fake_api.base_url},
        )

    def settled() -> bool:
        states = ProcessInstance.objects.filter(pk__in=[i.pk for i in instances.values()])
        return all(s in ("incident", "completed") for s in states.values_list("status", flat=True))

    wait_until(settled, timeout=300, what="every escape's incident on the workers")
    for case, instance in instances.items():
        instance.refresh_from_db()
        assert_contained(instance, case, [TEST_SECRET, settings.SECRET_KEY])

    # The workers live on: no pool process was lost, and the next instance completes.
    assert {p.pid for p in celery_workers.pool_children()} == pool
    deploy_document(
        sequence(
            "worker_after",
            [
                service_task("call", 'api + "/ping"'),
                script_task("total = order['amount'] * 2"),
            ],
        )
    )
    after = start_instance(
        key="worker_after", variables={**START_VARIABLES, "api": fake_api.base_url}
    )
    wait_until(
        lambda: ProcessInstance.objects.get(pk=after.pk).status == "completed",
        timeout=60,
        what="the instance after the escapes",
    )
    assert ProcessInstance.objects.get(pk=after.pk).variables["total"] == 24
