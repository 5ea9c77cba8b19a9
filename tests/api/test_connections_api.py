"""The connections API: who may do what, problem+json for bad input, the audit trail, and
the health view with an operator's hand on the breaker (real Redis)."""

from typing import Any
from uuid import uuid4

import pytest
from django.test import Client

from engine.models import Connection, ConnectionEvent

LIST = "/api/v1/connections/"


def detail(name: str, tail: str = "") -> str:
    return f"{LIST}{name}/{tail}"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def operator(make_user: Any) -> Any:
    return make_user("olga_operator", "operators")


@pytest.fixture
def designer(make_user: Any) -> Any:
    return make_user("dora_designer", "designers")


@pytest.fixture
def outsider(make_user: Any) -> Any:
    return make_user("otto_outsider")


def new_name() -> str:
    return f"crm-{uuid4().hex[:8]}"


def valid(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": "https://crm.example.com/api",
        "auth": "bearer",
        "secret_name": "CRM_TOKEN",
        "default_headers": {"Accept": "application/json"},
        "rate_limit": 20,
        "max_concurrent": 3,
        "breaker_failures": 5,
    }


def test_operators_create_change_and_delete_connections_audited(
    api_client_for: Any, operator: Any
) -> None:
    client = api_client_for(operator)
    name = new_name()
    created = client.post(LIST, valid(name), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["secret_name"] == "CRM_TOKEN"
    changed = client.patch(detail(name), {"rate_limit": 50}, format="json")
    assert changed.status_code == 200 and changed.json()["rate_limit"] == 50
    assert client.delete(detail(name)).status_code == 204
    assert not Connection.objects.filter(name=name).exists()
    events = ConnectionEvent.objects.filter(connection_name=name).order_by("id")
    assert [(e.type, e.actor) for e in events] == [
        ("created", operator),
        ("changed", operator),
        ("deleted", operator),
    ]
    assert events[1].payload["changed"] == {"rate_limit": [20, 50]}


def test_bad_input_is_a_problem_and_changes_nothing(api_client_for: Any, operator: Any) -> None:
    client = api_client_for(operator)
    name = new_name()
    body = problem(
        client.post(
            LIST,
            {**valid(name), "secret_name": "", "base_url": "not a url", "rate_limit": 0},
            format="json",
        ),
        400,
    )
    fields = {e["field"] for e in body["errors"]}
    assert {"base_url"} <= fields
    body = problem(client.post(LIST, {**valid(name), "rate_limit": 0}, format="json"), 400)
    assert {e["field"] for e in body["errors"]} == {"rate_limit"}
    body = problem(client.post(LIST, {**valid(name), "secret_name": ""}, format="json"), 400)
    assert {e["field"] for e in body["errors"]} == {"secret_name"}
    assert client.post(LIST, valid(name), format="json").status_code == 201
    problem(client.post(LIST, valid(name), format="json"), 400)  # the name is taken
    problem(client.patch(detail(name), {"auth": "oauth2"}, format="json"), 400)
    problem(client.get(detail("nothing-here")), 404)
    assert Connection.objects.filter(name=name).count() == 1
    assert ConnectionEvent.objects.filter(connection_name=name).count() == 1


def test_who_may_see_and_change_connections(
    api_client_for: Any, operator: Any, designer: Any, outsider: Any
) -> None:
    name = new_name()
    assert api_client_for(operator).post(LIST, valid(name), format="json").status_code == 201
    assert api_client_for(designer).get(LIST).status_code == 200
    problem(api_client_for(outsider).get(LIST), 403)
    problem(api_client_for(designer).post(LIST, valid(new_name()), format="json"), 403)
    problem(api_client_for(designer).patch(detail(name), {"rate_limit": 1}, format="json"), 403)
    problem(api_client_for(designer).delete(detail(name)), 403)
    problem(api_client_for(None).get(LIST), 401)
    assert Connection.objects.get(name=name).rate_limit == 20


def test_health_and_breaker_actions_are_for_operators_and_audited(
    api_client_for: Any, operator: Any, designer: Any
) -> None:
    name = new_name()
    client = api_client_for(operator)
    assert client.post(LIST, valid(name), format="json").status_code == 201
    problem(api_client_for(designer).get(detail(name, "health/")), 403)
    problem(
        api_client_for(designer).post(detail(name, "breaker/"), {"action": "reset"}, format="json"),
        403,
    )
    health = client.get(detail(name, "health/")).json()
    assert health["breaker"]["state"] == "closed"
    assert health["rate"]["limit"] == 20 and health["concurrency"]["cap"] == 3
    assert health["waiting_jobs"] == 0
    opened = client.post(detail(name, "breaker/"), {"action": "open"}, format="json")
    assert opened.status_code == 200
    assert (
        opened.json()["breaker"] | {"state": "open", "held_open": True} == opened.json()["breaker"]
    )
    closed = client.post(detail(name, "breaker/"), {"action": "close"}, format="json").json()
    assert closed["breaker"]["state"] == "closed"
    reset = client.post(detail(name, "breaker/"), {"action": "reset"}, format="json").json()
    assert [e["type"] for e in reset["events"]][:3] == [
        "breaker_reset",
        "breaker_close",
        "breaker_open",
    ]
    assert {e["actor"] for e in reset["events"][:3]} == {"olga_operator"}
    problem(client.post(detail(name, "breaker/"), {"action": "explode"}, format="json"), 400)


def test_the_admin_lists_connections_for_operators(
    make_staff: Any, operator: Any, client: Client
) -> None:
    staff = make_staff("sam_staff", "operators")
    client.force_login(staff)
    name = new_name()
    response = client.post(
        "/admin/engine/connection/add/",
        {
            "name": name,
            "base_url": "https://crm.example.com",
            "auth": "none",
            "api_key_header": "X-API-Key",
            "default_headers": "{}",
            "timeout_seconds": "10",
            "rate_period": "second",
            "breaker_window_seconds": "60",
            "breaker_min_calls": "10",
            "breaker_cooldown_seconds": "30",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert ConnectionEvent.objects.get(connection_name=name, type="created").actor == staff
    page = client.get("/admin/engine/connection/")
    assert page.status_code == 200 and name in page.content.decode()
    row = Connection.objects.get(name=name)
    change = client.get(f"/admin/engine/connection/{row.pk}/change/")
    assert change.status_code == 200 and "breaker" in change.content.decode()
    acted = client.post(
        "/admin/engine/connection/",
        {"action": "reset_breakers", "_selected_action": [row.pk]},
    )
    assert acted.status_code == 302
    assert ConnectionEvent.objects.get(connection_name=name, type="breaker_reset").actor == staff


def test_breaker_actions_with_the_limits_redis_down_are_a_503_and_change_nothing(
    api_client_for: Any, operator: Any, make_staff: Any, client: Client, settings: Any
) -> None:
    name = new_name()
    api = api_client_for(operator)
    assert api.post(LIST, valid(name), format="json").status_code == 201
    settings.BATON_LIMITS_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    for action in ("open", "close", "reset"):
        body = problem(api.post(detail(name, "breaker/"), {"action": action}, format="json"), 503)
        assert "limits' Redis cannot be reached" in body["detail"]
    staff = make_staff("sam_staff", "operators")
    client.force_login(staff)
    row = Connection.objects.get(name=name)
    acted = client.post(
        "/admin/engine/connection/",
        {"action": "reset_breakers", "_selected_action": [row.pk]},
        follow=True,
    )
    assert acted.status_code == 200
    assert "limits&#x27; Redis cannot be reached" in acted.content.decode()
    assert not ConnectionEvent.objects.filter(connection_name=name, type__startswith="breaker")


def test_the_connection_rules_are_checked_by_the_service_whatever_the_edge(
    designer: Any, outsider: Any, operator: Any
) -> None:
    """The permission rule lives in the service and the selectors: an edge that forgets to
    check (a command, a new view) still cannot read or change connections."""
    from django.core.exceptions import PermissionDenied

    from engine.selectors.connections import connection_list, health_of, visible_connection
    from engine.services.connections import create_connection

    name = new_name()
    create_connection(actor=operator, values=valid(name))
    assert name in [row.name for row in connection_list(designer)]
    assert visible_connection(designer, name).name == name
    assert health_of(operator, name)["name"] == name
    for call in (
        lambda: connection_list(outsider),
        lambda: visible_connection(outsider, name),
        lambda: health_of(designer, name),
        lambda: create_connection(actor=designer, values=valid(new_name())),
    ):
        with pytest.raises(PermissionDenied):
            call()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("breaker_cooldown_seconds", "0", "More than 0 and at most 86,400 seconds."),
        ("breaker_cooldown_seconds", "-5", "More than 0 and at most 86,400 seconds."),
        ("connect_timeout_seconds", "100000", "or more than 0 and at most 300 seconds."),
        ("timeout_seconds", "0", "More than 0 and at most 300 seconds."),
        ("breaker_window_seconds", "0", "1 to 86,400 seconds."),
    ],
)
def test_the_admin_and_the_api_refuse_the_same_out_of_bounds_numbers(
    make_staff: Any,
    operator: Any,
    client: Client,
    api_client_for: Any,
    field: str,
    value: str,
    message: str,
) -> None:
    staff = make_staff("sam_staff", "operators")
    client.force_login(staff)
    name = new_name()
    form = {
        "name": name,
        "base_url": "https://crm.example.com",
        "auth": "none",
        "api_key_header": "X-API-Key",
        "default_headers": "{}",
        "timeout_seconds": "10",
        "rate_period": "second",
        "breaker_window_seconds": "60",
        "breaker_min_calls": "10",
        "breaker_cooldown_seconds": "30",
    }
    response = client.post("/admin/engine/connection/add/", {**form, field: value})
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    body = problem(
        api_client_for(operator).post(LIST, {**valid(name), field: float(value)}, format="json"),
        400,
    )
    assert any(e["field"] == field and message in str(e) for e in body["errors"]), body
    assert not Connection.objects.filter(name=name).exists()
    assert not ConnectionEvent.objects.filter(connection_name=name).exists()
