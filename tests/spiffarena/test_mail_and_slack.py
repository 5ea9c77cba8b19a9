"""SpiffArena's `smtp/SendEmail` and `slack/PostMessage` commands, against an SMTP server and
a fake Slack Web API on 127.0.0.1; jobs run in this process, so that settings apply."""

from collections.abc import Iterator

import pytest

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_fixtures import FakeApi, Reply, jobs_for_no_worker
from tests.spiffarena.smtp_server import SmtpServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def diagram(key: str, operator: str, parameters: dict[str, str]) -> str:
    rows = "".join(
        f'<spiffworkflow:parameter id="{name}" type="str" value=\'{value}\' />'
        for name, value in parameters.items()
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="call" name="Call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="outcome">
          <spiffworkflow:parameters>{rows}</spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def run(key: str, xml: str, variables: dict) -> ProcessInstance:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    with jobs_for_no_worker():
        instance = start_instance(key=key, variables=variables)
    assert ServiceJob.objects.filter(instance=instance).exists(), (
        instance.status,
        instance.incident,
    )
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    return instance


def incident_error(instance: ProcessInstance) -> str:
    assert instance.incident is not None
    return str(instance.incident["error"])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(password="s3cret-mail", refuse_recipients={"nobody@example.invalid"})
    yield server
    server.close()


MAIL = {
    "smtp_host": '"127.0.0.1"',
    "smtp_port": "port",
    "smtp_user": '"mailer"',
    "smtp_password": '"secret:smtp_password"',
    "smtp_starttls": "False",
    "email_from": '"baton@example.invalid"',
    "email_to": "to",
    "email_subject": 'f"Order {order} confirmed"',
    "email_body": '"Thank you."',
}


def test_send_email_delivers_one_message_with_the_secret_password(
    smtp_server: SmtpServer, settings
) -> None:
    settings.BATON_SECRETS = {"smtp_password": "s3cret-mail"}
    instance = run(
        "mail",
        diagram("mail", "smtp/SendEmail", MAIL),
        {"port": smtp_server.port, "to": "ann@example.invalid, bob@example.invalid", "order": 7},
    )
    assert instance.status == "completed", instance.incident
    [received] = smtp_server.received
    assert received.login == "mailer"
    assert received.sender == "baton@example.invalid"
    assert received.recipients == ["ann@example.invalid", "bob@example.invalid"]
    assert received.message["Subject"] == "Order 7 confirmed"
    assert str(received.message.get_payload()).strip() == "Thank you."
    assert instance.variables["outcome"]["sent"] is True
    assert instance.variables["outcome"]["message_id"] == received.message["Message-ID"]


def test_a_refused_log_in_and_refused_recipients_are_bpmn_errors(
    smtp_server: SmtpServer, settings
) -> None:
    settings.BATON_SECRETS = {"smtp_password": "wrong-password"}
    xml = diagram("mail_auth", "smtp/SendEmail", MAIL)
    instance = run(
        "mail_auth", xml, {"port": smtp_server.port, "to": "a@example.invalid", "order": 1}
    )
    assert instance.status == "incident"
    assert "SMTP_AUTH" in incident_error(instance)

    settings.BATON_SECRETS = {"smtp_password": "s3cret-mail"}
    xml = diagram("mail_rcpt", "smtp/SendEmail", MAIL)
    instance = run(
        "mail_rcpt", xml, {"port": smtp_server.port, "to": "nobody@example.invalid", "order": 1}
    )
    assert instance.status == "incident"
    assert "SMTP_RECIPIENTS" in incident_error(instance)
    assert smtp_server.received == []


SLACK = {
    "channel": '"team"',
    "message": 'f"New request from {who}"',
    "token": '"secret:slack_token"',
}


def test_post_message_calls_chat_post_message_with_the_bot_token(
    fake_api: FakeApi, settings
) -> None:
    settings.BATON_SECRETS = {"slack_token": "xoxb-test-1"}
    settings.BATON_SLACK_API_URL = fake_api.base_url + "/api"
    fake_api.reply("/api/chat.postMessage", Reply(body={"ok": True, "channel": "C1", "ts": "1.2"}))
    instance = run("slack", diagram("slack", "slack/PostMessage", SLACK), {"who": "Ann"})
    assert instance.status == "completed", instance.incident
    assert instance.variables["outcome"] == {"ok": True, "channel": "C1", "ts": "1.2"}
    [request] = fake_api.requests_to("/api/chat.postMessage")
    assert request.headers["Authorization"] == "Bearer xoxb-test-1"
    assert request.body == b'{"channel":"team","text":"New request from Ann"}'


def test_slack_answering_not_ok_is_a_bpmn_error(fake_api: FakeApi, settings) -> None:
    settings.BATON_SECRETS = {"slack_token": "xoxb-test-1"}
    settings.BATON_SLACK_API_URL = fake_api.base_url + "/api"
    fake_api.reply("/api/chat.postMessage", Reply(body={"ok": False, "error": "channel_not_found"}))
    instance = run("slack_no", diagram("slack_no", "slack/PostMessage", SLACK), {"who": "Ann"})
    assert instance.status == "incident"
    assert "SLACK_CHANNEL_NOT_FOUND" in incident_error(instance)


def test_a_log_in_without_tls_is_refused_where_not_allowed(settings) -> None:
    """The password crosses the network only encrypted: without STARTTLS the connector logs in
    only to a server on loopback (the test above), and not even there with
    BATON_SMTP_LOGIN_IN_CLEAR=never (the rule a server elsewhere meets: tests reach no other
    address); it refuses before AUTH."""
    host = "127.0.0.1"
    server = SmtpServer(password="s3cret-mail", host=host)
    try:
        settings.BATON_SMTP_LOGIN_IN_CLEAR = "never"
        settings.BATON_SECRETS = {"smtp_password": "s3cret-mail"}
        mail = {**MAIL, "smtp_host": f'"{host}"'}
        instance = run(
            "mail_clear",
            diagram("mail_clear", "smtp/SendEmail", mail),
            {"port": server.port, "to": "a@example.invalid", "order": 1},
        )
        assert instance.status == "incident"
        assert "SMTP_INSECURE_LOGIN" in incident_error(instance)
        assert server.received == [] and server.logins == []

        # Without a user there is nothing to protect: the message goes out.
        anonymous = {k: v for k, v in mail.items() if k not in ("smtp_user", "smtp_password")}
        instance = run(
            "mail_anon",
            diagram("mail_anon", "smtp/SendEmail", anonymous),
            {"port": server.port, "to": "a@example.invalid", "order": 2},
        )
        assert instance.status == "completed", instance.incident
        assert [r.login for r in server.received] == [None]
    finally:
        server.close()
