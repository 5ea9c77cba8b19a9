"""The security review of connections, limits, callbacks and connectors (issue 22): a diagram
or instance data never reaches another connection's credentials, results and bodies are
bounded, and credentials a connector obtained stay out of what Baton stores."""

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection as db_connection

from engine.connectors import BusinessError
from engine.connectors.connections import forget_connections
from engine.connectors.oauth2 import access_token
from engine.exceptions import InvalidInput
from engine.models import Connection, ConnectionEvent, ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.connections import create_connection
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import TEST_SECRET, FakeApi, Reply, jobs_for_no_worker

pytestmark = pytest.mark.django_db(transaction=True)
TABLES = (
    "engine_servicejob",
    "engine_processinstance",
    "engine_instanceevent",
    "engine_humantask",
    "engine_elementrun",
    "engine_connectionevent",
)


@pytest.fixture(autouse=True)
def crm_secret(settings) -> Iterator[None]:
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {"CRM_TOKEN": TEST_SECRET}, ""
    forget_connections()
    yield
    forget_connections()


def operator() -> User:
    user, _ = User.objects.get_or_create(username="olga_security")
    group, _ = Group.objects.get_or_create(name="operators")
    user.groups.add(group)
    return user


def connection(api: FakeApi, **values: object) -> Connection:
    name = f"api-{uuid4().hex[:10]}"
    return create_connection(
        actor=operator(), values={"name": name, "base_url": api.base_url, **values}
    )


def deploy_task(url_expression: str, catch_error: str | None = None, **params: str) -> str:
    """A process of one http task (whose BPMN error `catch_error` is caught); its key."""
    key = f"sec_{uuid4().hex[:10]}"
    xml = sequence(
        key, [service_task("call", url_expression, params=params)], catch_error=catch_error
    )
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    return key


def stored_anywhere(text: str) -> list[str]:
    """The tables in which some row holds `text`."""
    found = []
    with db_connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s",  # noqa: S608
                [f"%{text}%"],
            )
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def run(key: str, variables: dict[str, object] | None = None) -> ProcessInstance:
    """Start the process and run its job (if one was created) in this process."""
    with jobs_for_no_worker():
        instance = start_instance(key=key, variables=variables or {})
    for job in ServiceJob.objects.filter(instance=instance, status="pending"):
        execute_service_job(str(job.id))
    instance.refresh_from_db()
    return instance


# -- 1. a diagram cannot borrow a connection's OAuth2 token ---------------------------------


def test_a_diagram_written_oauth2_parameter_is_refused_and_gets_no_token(
    fake_api: FakeApi,
) -> None:
    fake_api.reply(
        "/token", Reply(body={"access_token": "the-cached-token-1234", "expires_in": 600})
    )
    row = connection(
        fake_api,
        auth="oauth2",
        token_url=f"{fake_api.base_url}/token",
        username="baton-client",
        secret_name="CRM_TOKEN",
    )
    owner = run(deploy_task('"/data"', connection=row.name))
    assert owner.status == "completed"
    assert [c.headers["Authorization"] for c in fake_api.requests_to("/data")] == [
        "Bearer the-cached-token-1234"
    ]
    # What a designer reads from GET /api/v1/connections/, and a secret of its own.
    stolen = (
        f'${{{{"token_url": "{fake_api.base_url}/token", "client_id": "baton-client", '
        f'"scope": "", "connection": "{row.name}", "client_secret": "x"}}}}'
    )
    for name in ("oauth2", "$oauth2"):
        thief = run(deploy_task(f'"{fake_api.base_url}/steal"', **{name: stolen}))
        assert thief.status == "incident" and thief.incident is not None
        assert f"{name!r} is not a parameter name Baton allows" in thief.incident["error"]
        assert not ServiceJob.objects.filter(instance=thief).exists()
    assert fake_api.requests_to("/steal") == []
    assert len(fake_api.requests_to("/token")) == 1


def test_the_cached_token_is_only_shared_with_the_same_client_secret(fake_api: FakeApi) -> None:
    fake_api.reply(
        "/token",
        Reply(body={"access_token": "the-cached-token-5678", "expires_in": 600}),
        Reply(401, {"error": "invalid_client"}),
    )
    oauth = {
        "connection": f"api-{uuid4().hex[:10]}",
        "token_url": f"{fake_api.base_url}/token",
        "client_id": "baton-client",
        "scope": "",
        "client_secret": TEST_SECRET,
    }
    assert access_token(oauth) == "the-cached-token-5678"
    assert access_token(oauth) == "the-cached-token-5678"  # from the cache
    with pytest.raises(BusinessError) as refused:
        access_token({**oauth, "client_secret": "x"})
    assert refused.value.code == "OAUTH2_FAILED"
    assert len(fake_api.requests_to("/token")) == 2


# -- 2. a connector's answer is bounded before it is stored ---------------------------------


def test_an_answer_larger_than_the_cap_is_an_incident_not_a_stored_row(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_MAX_CONNECTOR_RESULT_BYTES = 2000
    fake_api.reply("/big", Reply(body={"items": ["y" * 100] * 50}))
    instance = run(deploy_task(f'"{fake_api.base_url}/big"'))
    assert instance.status == "incident" and instance.incident is not None
    assert "larger than 2000 bytes as JSON" in instance.incident["error"]
    assert "y" * 100 not in str(ServiceJob.objects.get(instance=instance).result)


# -- 3. instance data cannot choose credentials ---------------------------------------------


def test_a_connection_named_by_an_expression_is_refused(fake_api: FakeApi) -> None:
    row = connection(fake_api, auth="bearer", secret_name="CRM_TOKEN")
    key = deploy_task('"/data"', connection="${which}")
    instance = run(key, {"which": row.name})
    assert instance.status == "incident" and instance.incident is not None
    assert "the parameter connection is an expression" in instance.incident["error"]
    assert not ServiceJob.objects.filter(instance=instance).exists()
    assert fake_api.seen == []
    # Literal text, plain or as a constant expression, is a connection's name.
    assert run(deploy_task('"/data"', connection=f'${{"{row.name}"}}')).status == "completed"


@pytest.mark.parametrize(
    "path", ["/../admin", "a/%2e%2e/admin", "a/%252E%252e/admin", "a\\..\\admin", "..?x=1"]
)
def test_a_path_that_climbs_out_of_the_base_url_is_refused(fake_api: FakeApi, path: str) -> None:
    row = connection(
        fake_api, base_url=f"{fake_api.base_url}/api/v1", auth="bearer", secret_name="CRM_TOKEN"
    )
    key = deploy_task("path", connection=row.name)
    instance = run(key, {"path": path})
    assert instance.status == "incident" and instance.incident is not None
    assert "HTTP_BAD_PARAMETERS" in str(instance.incident)
    assert fake_api.seen == []
    assert run(key, {"path": "orders/..x/1"}).status == "completed"
    assert [s.path for s in fake_api.seen] == ["/api/v1/orders/..x/1"]


# -- 4. an OAuth2 token an API echoes back is not stored ------------------------------------


def test_an_oauth2_token_echoed_in_an_error_body_is_not_stored(fake_api: FakeApi) -> None:
    token = f"echoed-token-{uuid4().hex}"
    fake_api.reply("/token", Reply(body={"access_token": token, "expires_in": 600}))
    fake_api.reply("/data", Reply(400, {"error": "bad", "you_sent": f"Bearer {token}"}))
    row = connection(
        fake_api,
        auth="oauth2",
        token_url=f"{fake_api.base_url}/token",
        username="baton-client",
        secret_name="CRM_TOKEN",
    )
    instance = run(deploy_task('"/data"', catch_error="HTTP_400", connection=row.name))
    assert [c.headers["Authorization"] for c in fake_api.requests_to("/data")] == [
        f"Bearer {token}"
    ]
    assert instance.status == "completed" and instance.variables["handled"] is True
    # The diagram gets the error's details, with the token masked; no row holds it.
    assert instance.variables["error"]["details"]["body"]["you_sent"] == "Bearer ***"
    assert stored_anywhere("you_sent")
    assert stored_anywhere(token) == []


# -- 5. an HTTP answer is read only up to a cap ---------------------------------------------


def test_an_answer_body_over_the_cap_is_http_response_too_large(
    fake_api: FakeApi, settings: Any
) -> None:
    settings.BATON_HTTP_MAX_RESPONSE_BYTES = 5000
    fake_api.reply("/huge", Reply(body="z" * 6000, headers={"Content-Type": "text/plain"}))
    fake_api.reply("/fits", Reply(body="z" * 4000, headers={"Content-Type": "text/plain"}))
    key = deploy_task("url", catch_error="HTTP_RESPONSE_TOO_LARGE")
    instance = run(key, {"url": f"{fake_api.base_url}/huge"})
    assert instance.status == "completed" and instance.variables["handled"] is True
    assert "larger than 5000 bytes" in instance.variables["error"]["message"]
    assert "z" * 100 not in str(instance.variables)
    fits = run(key, {"url": f"{fake_api.base_url}/fits"})
    assert fits.status == "completed" and fits.variables["call_result"]["body"] == "z" * 4000


# -- 8. a connection's default headers hold credentials only as secret references -------------


def test_credential_default_headers_are_secret_references_resolved_on_the_call(
    fake_api: FakeApi,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        connection(fake_api, default_headers={"Authorization": "Bearer in-clear-1234567"})
    assert "Authorization: a credential is given as a secret reference" in str(refused.value.errors)
    assert not ConnectionEvent.objects.filter(payload__icontains="in-clear-1234567").exists()
    row = connection(
        fake_api,
        default_headers={"X-Api-Token": "secret:CRM_TOKEN", "Accept": "application/json"},
    )
    assert run(deploy_task('"/data"', connection=row.name)).status == "completed"
    [call] = fake_api.requests_to("/data")
    assert call.headers["X-Api-Token"] == TEST_SECRET
    assert call.headers["Accept"] == "application/json"
    # Designers and the audit trail see the reference only.
    created = ConnectionEvent.objects.get(connection=row, type="created")
    assert "secret:CRM_TOKEN" in str(created.payload) and TEST_SECRET not in str(created.payload)
    assert stored_anywhere(TEST_SECRET) == []


# -- 11. the OAuth2 fetch lock is released by its owner only -----------------------------------


def test_a_slow_fetch_does_not_free_the_lock_another_worker_took(
    fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.connectors import oauth2
    from engine.connectors.limits import redis_client

    oauth = {
        "connection": f"api-{uuid4().hex[:10]}",
        "token_url": f"{fake_api.base_url}/token",
        "client_id": "baton-client",
        "scope": "",
        "client_secret": TEST_SECRET,
    }
    lock = oauth2._key(oauth) + ":fetching"
    fetch = oauth2._fetch

    def slow_fetch(given: dict[str, Any]) -> tuple[str, float]:
        # This fetch outlived its lock, and another worker took the lock meanwhile.
        redis_client().set(lock, "another-worker", ex=30)
        return fetch(given)

    monkeypatch.setattr(oauth2, "_fetch", slow_fetch)
    fake_api.reply(
        "/token", Reply(body={"access_token": "a-token-of-the-slow-one", "expires_in": 60})
    )
    assert access_token(oauth) == "a-token-of-the-slow-one"
    assert redis_client().get(lock) == b"another-worker"
    redis_client().delete(lock)
