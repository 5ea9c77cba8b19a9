"""Shared fixtures: users in their groups, token-authenticated API clients, deployed example
diagrams, a builder for small BPMN documents (Camunda dialect) and a movable clock."""

import datetime
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

import engine.clock
from engine.selectors.my_work import definition_element_names
from engine.selectors.operations import element_names_of
from engine.services.definition_cache import (
    definition_elements,
    definition_key,
    definition_specs,
    definition_traits,
)
from engine.services.running import definition_script_time_limit, definition_step_limits
from processes.models import ProcessDefinition
from processes.services import deploy, deploy_examples
from tests.helpers import EXPENSE_FILE, PARALLEL_FILE, SHARED_DIR, build_bpmn, upload_of

# Baton's own pytest plugin (the `baton` fixture, the test_*.json collector, coverage), as a
# team gets it from the `pytest11` entry point of the same name (no double registration).
pytest_plugins = ["baton.testing.plugin"]


@pytest.fixture(autouse=True)
def _fresh_definition_caches():
    """Definitions are cached per primary key; a flushed test database may reuse keys."""
    definition_specs.cache_clear()
    definition_elements.cache_clear()
    definition_key.cache_clear()
    definition_traits.cache_clear()
    definition_element_names.cache_clear()
    element_names_of.cache_clear()
    definition_script_time_limit.cache_clear()
    definition_step_limits.cache_clear()
    yield
    definition_specs.cache_clear()
    definition_elements.cache_clear()
    definition_key.cache_clear()
    definition_traits.cache_clear()
    definition_element_names.cache_clear()
    element_names_of.cache_clear()
    definition_script_time_limit.cache_clear()
    definition_step_limits.cache_clear()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared, the directory beside the repository checkout (the example corpus). A test
    that needs it is skipped on a developer's machine without it, and fails under CI=true,
    where a missing corpus must not pass for a green run."""
    if not SHARED_DIR.is_dir():
        message = f"the shared directory is not beside the checkout: {SHARED_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DIR


# --- time --------------------------------------------------------------------------------


class MovableClock:
    """The time of the whole test process, moved by time-machine: Baton's clock (timers,
    schedules, SpiffWorkflow's timer events) and Django's `timezone.now()` (created_at, due
    dates) alike. Not `time.monotonic()`, not Postgres's `now()` (a worker claims a job
    when its next_attempt_at has come by Postgres's time), not other processes (workers
    started by a test keep the real time)."""

    def __init__(self, machine: TimeMachineFixture) -> None:
        self._machine = machine

    def now(self) -> datetime.datetime:
        return engine.clock.now()

    def advance(self, delta: datetime.timedelta) -> datetime.datetime:
        """Jump ahead by `delta` (time keeps ticking from there); returns the new now."""
        self._machine.shift(delta)
        return engine.clock.now()


@pytest.fixture
def clock(time_machine: TimeMachineFixture) -> MovableClock:
    """Real time, ticking, until the test advances it; real time again after the test."""
    time_machine.move_to(datetime.datetime.now(datetime.UTC), tick=True)
    return MovableClock(time_machine)


# --- users -------------------------------------------------------------------------------


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str, *groups: str) -> User:
        user = User.objects.create_user(username=username, password="not-used-here")
        for name in groups:
            group, _ = Group.objects.get_or_create(name=name)
            user.groups.add(group)
        return user

    return make


@pytest.fixture
def make_staff(make_user) -> Callable[..., User]:
    """A user with staff status (the admin site) in the given groups."""

    def make(username: str, *groups: str) -> User:
        user = make_user(username, *groups)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def designer(make_user) -> User:
    return make_user("dora_designer", "designers")


@pytest.fixture
def approver(make_user) -> User:
    return make_user("alice_approver", "managers")


@pytest.fixture
def approver2(make_user) -> User:
    return make_user("mark_approver", "managers")


@pytest.fixture
def legal_user(make_user) -> User:
    return make_user("lena_legal", "legal")


@pytest.fixture
def outsider(make_user) -> User:
    return make_user("oscar_outsider")


# --- API clients -------------------------------------------------------------------------


@pytest.fixture
def api_client_for(db) -> Callable[[User | None], APIClient]:
    """`api_client_for(user)`: a client sending `Authorization: Token <key>`; None = anonymous."""

    def make(user: User | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def anonymous_client(db) -> APIClient:
    return APIClient()


# --- deployed examples -------------------------------------------------------------------


@pytest.fixture
def example_definitions(db) -> dict[str, ProcessDefinition]:
    """Every diagram of processes/bpmn/, deployed as the run command does, by key."""
    deploy_examples()
    return {d.key: d for d in ProcessDefinition.objects.all()}


@pytest.fixture
def expense_definition(db) -> ProcessDefinition:
    result = deploy(name="Expenses", files=[upload_of(EXPENSE_FILE)], actor=None)
    (definition,) = result.created
    return definition


@pytest.fixture
def parallel_definition(db) -> ProcessDefinition:
    result = deploy(name="Reviews", files=[upload_of(PARALLEL_FILE)], actor=None)
    (definition,) = result.created
    return definition


@pytest.fixture
def bpmn_builder() -> Callable[..., str]:
    return build_bpmn
