"""Secrets in service-task parameters (DESIGN section 5): only from the declared store, only
from literal diagram text, and masked, in their common encodings too, in everything Baton
stores and in the workers' logs. Real workers, real broker, Postgres, an API on 127.0.0.1."""

import base64
import html
import json
import re
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from django.db import connection

from engine.bpmn import connector_tasks
from engine.connectors import secrets
from engine.connectors.secrets import MissingSecret, lookup, redact
from engine.models import ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import (
    TEST_PASSWORD,
    TEST_SECRET,
    WORKER_SECRET_KEY,
    FakeApi,
    Reply,
    Workers,
    jobs_for_no_worker,
    settle,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)
TABLES = ("engine_servicejob", "engine_processinstance", "engine_instanceevent", "engine_humantask")


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def stored_anywhere(text: str) -> list[str]:
    """The tables in which some row holds `text`."""
    found = []
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s",  # noqa: S608
                [f"%{text}%"],
            )
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def encodings(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote_plus(secret),
        raw.hex(),
    ]


# -- the store --------------------------------------------------------------------------------


def test_the_environment_is_not_a_secret_store(monkeypatch, settings) -> None:
    monkeypatch.setenv("CRM_TOKEN_ONLY_IN_ENV", "from-the-environment")
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {}, ""
    with pytest.raises(MissingSecret, match="'CRM_TOKEN_ONLY_IN_ENV' is not declared"):
        lookup("CRM_TOKEN_ONLY_IN_ENV")


def test_a_json_file_and_a_directory_declare_secrets(tmp_path: Path, settings) -> None:
    store = tmp_path / "secrets.json"
    store.write_text(json.dumps({"CRM_TOKEN": "from-json"}))
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {}, str(store)
    assert lookup("CRM_TOKEN") == "from-json"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "CRM_TOKEN").write_text("from-a-file\n")
    settings.BATON_SECRETS_PATH = str(tmp_path / "dir")
    assert lookup("CRM_TOKEN") == "from-a-file"
    with pytest.raises(MissingSecret):
        lookup("OTHER")


def test_redaction_covers_the_common_encodings() -> None:
    basic = base64.b64encode(f"crm:{TEST_PASSWORD}".encode()).decode()
    texts = [*encodings(TEST_PASSWORD), f"Basic {basic}", repr(TEST_PASSWORD), quote(TEST_PASSWORD)]
    for text in redact(texts, [TEST_PASSWORD]):
        assert "***" in text
    assert redact({TEST_PASSWORD: [TEST_PASSWORD]}, [TEST_PASSWORD]) == {"***": ["***"]}


@pytest.mark.parametrize("value", ["e", "1234567", "é" * 7])
def test_a_secret_shorter_than_8_characters_is_refused(settings, value: str) -> None:
    """A 1-character secret `e` would mask every `e` of every log line: refused instead."""
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {"PIN": value}, ""
    with pytest.raises(MissingSecret) as refused:
        lookup("PIN")
    assert "The secret 'PIN' is too short to be kept out of logs (8 characters at least)" in str(
        refused.value
    )
    assert repr(value) not in str(refused.value)
    settings.BATON_SECRETS = {"PIN": "12345678"}
    assert lookup("PIN") == "12345678"


def test_a_too_short_secret_is_an_incident_and_nothing_is_sent(fake_api: FakeApi, settings) -> None:
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {"CRM_TOKEN": "e"}, ""
    deploy_xml("sec_spiff", SPIFF)
    with jobs_for_no_worker():
        instance = start_instance(key="sec_spiff", variables={"api": fake_api.base_url})
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "incident" and instance.incident is not None
    assert (
        "The secret 'CRM_TOKEN' is too short to be kept out of logs (8 characters at least)"
        in instance.incident["error"]
    )
    assert fake_api.requests_to("/crm") == []


def base64_cores(raw: bytes) -> list[str]:
    """What stays of `raw`'s base64 form, whatever bytes come before it."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        cores.append(encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    return cores


@pytest.mark.parametrize("width", [64, 76])  # PEM, MIME
def test_line_wrapped_base64_is_masked_wherever_the_lines_break(width: int) -> None:
    cores = base64_cores(TEST_PASSWORD.encode())
    for lead in range(width + 3):
        encoded = base64.b64encode(b"x" * lead + f"crm:{TEST_PASSWORD}".encode()).decode()
        wrapped = ("\r\n" if width == 76 else "\n").join(textwrap.wrap(encoded, width))
        masked = redact(f"-----BEGIN DATA-----\n{wrapped}\n-----END DATA-----", [TEST_PASSWORD])
        assert "***" in masked, lead
        unwrapped = "".join(masked.split())
        assert not any(core in unwrapped for core in cores), (lead, masked)


def lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}|\\u[0-9a-f]{4}", lambda m: m.group().lower(), text)


@pytest.mark.parametrize(
    "form",
    [
        lower_escapes(quote(TEST_PASSWORD, safe="")),  # %2f, %c3%a9
        lower_escapes(quote_plus(TEST_PASSWORD)),
        "".join(c.upper() if i % 2 else c for i, c in enumerate(TEST_PASSWORD.encode().hex())),
        json.dumps(TEST_PASSWORD)[1:-1].replace("/", "\\/"),  # JSON with escaped slashes
        json.dumps(TEST_PASSWORD, ensure_ascii=False)[1:-1].replace("/", "\\/"),
        json.dumps(TEST_PASSWORD)[1:-1].replace("\\u00e9", "\\u00E9"),
        html.escape(TEST_PASSWORD),
    ],
)
def test_escapes_in_any_case_json_slashes_and_html_are_masked(form: str) -> None:
    assert form != TEST_PASSWORD
    assert redact(f"before {form} after", [TEST_PASSWORD]) == "before *** after"


def test_param_path_has_one_definition() -> None:
    assert secrets.ParamPath is connector_tasks.ParamPath


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL"])
def test_an_undeclared_environment_variable_is_refused_and_nothing_is_sent(
    celery_workers: Workers, fake_api: FakeApi, name: str
) -> None:
    key = f"sec_env_{name.lower()}"
    deploy_xml(
        key,
        sequence(
            key,
            [
                service_task(
                    "call",
                    'api + "/crm"',
                    headers={"Authorization": f"Bearer secret:{name}"},
                )
            ],
        ),
    )
    instance = settle(start_instance(key=key, variables={"api": fake_api.base_url}))
    assert instance.status == "incident"
    assert f"The secret '{name}' is not declared" in instance.incident["error"]
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.attempt) == ("dead", 1)
    assert fake_api.requests_to("/crm") == []
    assert stored_anywhere(WORKER_SECRET_KEY) == []


@pytest.mark.slow
def test_a_secret_reference_that_came_from_data_is_sent_as_plain_text(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml(
        "sec_data",
        sequence(
            "sec_data",
            [
                service_task(
                    "call",
                    'api + "/comment"',
                    headers={"X-Comment": "${comment}", "X-Note": "${note}"},
                    params={"method": "POST", "json": '${{"comment": comment}}'},
                )
            ],
        ),
    )
    instance = settle(
        start_instance(
            key="sec_data",
            variables={
                "api": fake_api.base_url,
                "comment": "secret:CRM_TOKEN",
                "note": "Bearer secret:CRM_TOKEN",
            },
        )
    )
    assert instance.status == "completed"
    [request] = fake_api.requests_to("/comment")
    assert request.headers["X-Comment"] == "secret:CRM_TOKEN"
    assert request.headers["X-Note"] == "Bearer secret:CRM_TOKEN"
    assert json.loads(request.body) == {"comment": "secret:CRM_TOKEN"}
    assert TEST_SECRET not in str(request.headers) + request.body.decode()


@pytest.mark.slow
def test_a_secret_named_in_an_expression_is_an_incident(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml(
        "sec_expr",
        sequence(
            "sec_expr",
            [
                service_task(
                    "call",
                    'api + "/crm"',
                    headers={"Authorization": '${"Bearer secret:CRM_TOKEN" + tail}'},
                )
            ],
        ),
    )
    instance = settle(
        start_instance(
            key="sec_expr",
            variables={
                "api": fake_api.base_url,
                "tail": "",
            },
        )
    )
    assert instance.status == "incident"
    assert "headers.Authorization names a secret in an expression" in instance.incident["error"]
    assert "only in literal text" in instance.incident["error"]
    assert not ServiceJob.objects.filter(instance=instance).exists()
    assert fake_api.requests_to("/crm") == []


SPIFF = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="sec_spiff" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="http/GetRequest" resultVariable="response">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="url" type="str" value="api + '/crm'" />
            <spiffworkflow:parameter id="headers" type="any"
                value="{'Authorization': 'Bearer secret:CRM_TOKEN'}" />
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["json file", "settings"])
def test_a_declared_secret_from_a_json_file_or_the_settings_is_sent(
    fake_api: FakeApi, settings, tmp_path: Path, store: str
) -> None:
    """Run here, not on the workers, so that the store is this test's own; the diagram is
    SpiffArena's, whose parameters are expressions made of constants."""
    settings.BATON_SECRETS, settings.BATON_SECRETS_PATH = {}, ""
    if store == "settings":
        settings.BATON_SECRETS = {"CRM_TOKEN": "from-the-settings-6a1e"}
    else:
        (tmp_path / "s.json").write_text(json.dumps({"CRM_TOKEN": "from-the-json-file-3c7d"}))
        settings.BATON_SECRETS_PATH = str(tmp_path / "s.json")
    deploy_xml("sec_spiff", SPIFF)
    with jobs_for_no_worker():
        instance = start_instance(key="sec_spiff", variables={"api": fake_api.base_url})
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "completed"
    [request] = fake_api.requests_to("/crm")
    value = request.headers["Authorization"].removeprefix("Bearer ")
    assert value == ("from-the-settings-6a1e" if store == "settings" else "from-the-json-file-3c7d")
    assert stored_anywhere(value) == []


@pytest.mark.slow
def test_a_secret_from_the_directory_store_reaches_the_api_and_nothing_else(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml(
        "sec_dir",
        sequence(
            "sec_dir",
            [
                service_task(
                    "call",
                    'api + "/crm"',
                    headers={"Authorization": "Bearer secret:CRM_TOKEN"},
                )
            ],
        ),
    )
    instance = settle(start_instance(key="sec_dir", variables={"api": fake_api.base_url}))
    assert instance.status == "completed"
    [request] = fake_api.requests_to("/crm")
    assert request.headers["Authorization"] == f"Bearer {TEST_SECRET}"
    assert stored_anywhere(TEST_SECRET) == []


@pytest.mark.slow
def test_a_secret_that_breaks_a_parameter_is_masked_in_the_worker_log(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    deploy_xml(
        "sec_log",
        sequence(
            "sec_log",
            [
                service_task(
                    "call",
                    'api + "/crm"',
                    params={"timeout": "secret:CRM_TOKEN"},
                    retry_cycle="R1/PT1S",
                )
            ],
        ),
    )
    instance = settle(start_instance(key="sec_log", variables={"api": fake_api.base_url}))
    assert instance.status == "incident"
    assert "could not convert string to float: '***'" in instance.incident["error"]
    wait_until(
        lambda: "could not convert string to float: '***'" in celery_workers.log_text(),
        what="the failure in the worker log",
    )
    log = celery_workers.log_text()
    assert "Traceback" in log
    for text in [TEST_SECRET, *encodings(TEST_SECRET)]:
        assert text not in log
    assert stored_anywhere(TEST_SECRET) == []


@pytest.mark.slow
@pytest.mark.parametrize("status", [200, 404])
def test_a_secret_echoed_back_encoded_is_masked_in_what_is_stored(
    celery_workers: Workers, fake_api: FakeApi, status: int
) -> None:
    basic = "Basic " + base64.b64encode(f"crm:{TEST_PASSWORD}".encode()).decode()
    echoed = {"plain": TEST_PASSWORD, "encoded": encodings(TEST_PASSWORD), "basic": basic}
    fake_api.reply("/echo", Reply(status, {"echo": echoed}))
    key = f"sec_echo_{status}"
    deploy_xml(
        key,
        sequence(
            key,
            [
                service_task(
                    "call",
                    'api + "/echo"',
                    params={"method": "POST", "json": "${{'password': 'secret:CRM_PASSWORD'}}"},
                )
            ],
            catch_error="HTTP_404",
        ),
    )
    instance = settle(start_instance(key=key, variables={"api": fake_api.base_url}))
    assert instance.status == "completed"
    [request] = fake_api.requests_to("/echo")
    assert json.loads(request.body) == {"password": TEST_PASSWORD}
    stored = (
        instance.variables["call_result"]["body"]
        if status == 200
        else instance.variables["error"]["details"]["body"]
    )
    assert stored["echo"]["plain"] == "***"
    assert stored["echo"]["encoded"] == ["***"] * len(encodings(TEST_PASSWORD))
    assert stored["echo"]["basic"] != basic and "***" in stored["echo"]["basic"]
    for text in [TEST_PASSWORD, *encodings(TEST_PASSWORD), basic]:
        assert stored_anywhere(text) == [], text
