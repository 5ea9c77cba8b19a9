"""The outbound policy of connectors (DESIGN section 5): no link-local or metadata address,
not Baton's own database or broker, no scheme but http(s), and in production no loopback or
private address unless allowed. A refused call is an incident naming the rule, made before
any connection: real listeners on 127.0.0.x prove that nothing connected."""

import ipaddress
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from config import launch
from config.devstack import BASE_DIR, settings_module
from engine.connectors import outbound
from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import (
    OWN_SERVICE,
    OWN_SERVICE_HOST,
    OWN_SERVICE_PORT,
    FakeApi,
    Workers,
    jobs_for_no_worker,
    settle,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_service(settings):
    """The service of Baton's own these tests aim at, here as on the workers: named, since the
    database and broker may be unix sockets (the embedded ones are)."""
    settings.BATON_OWN_SERVICES = [OWN_SERVICE]


@contextmanager
def listening(host: str, port: int = 0) -> Iterator[socket.socket]:
    """A TCP socket listening on host:port that never accepts: a connection attempt stays
    in its queue, where `connected` sees it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier test's TIME_WAIT
    sock.bind((host, port))
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


def connected(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def assert_listener_works(sock: socket.socket) -> None:
    """The control: the listener does see a connection, so its silence meant something."""
    with socket.create_connection(sock.getsockname()[:2], timeout=5):
        wait_until(lambda: connected(sock), what="the control connection")


def deploy_url_task(key: str) -> None:
    xml = sequence(key, [service_task("call", "url")])
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def assert_refused(instance: ProcessInstance, reason: str) -> None:
    assert instance.status == "incident", instance.status
    assert instance.incident is not None
    assert "refused by the outbound policy" in instance.incident["error"]
    assert reason in instance.incident["error"], instance.incident["error"]
    job = ServiceJob.objects.get(instance=instance)
    assert (job.status, job.error_code, job.attempt) == ("dead", "HTTP_REFUSED", 1)
    assert not InstanceEvent.objects.filter(instance=instance, type="job_failed").exists()


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (metadata)"),
        ("http://[fe80::1]/", "fe80::1 is link-local (metadata)"),
        ("http://100.100.100.200/", "100.100.100.200 is a cloud metadata address"),
        (
            "http://metadata.google.internal/",
            "metadata.google.internal is a cloud metadata service",
        ),
        ("http://0.0.0.0:8000/", "0.0.0.0 is not a unicast address"),
        ("file:///etc/passwd", "the scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:6379/_INFO", "the scheme 'gopher' is not allowed"),
        ("http://127.0.0.1:{port}/", "port {port} is Baton's own service"),
        ("http://localhost:{port}/", "port {port} is Baton's own service"),
        ("http://127.0.0.2:{port}/", "port {port} is Baton's own service"),
        ("http://2130706433:{port}/", "(127.0.0.1) port {port} is Baton's own service"),
        ("http://[::ffff:127.0.0.1]:{port}/", "port {port} is Baton's own service"),
        ("http://[::1]:{port}/", "port {port} is Baton's own service"),
    ],
)
def test_refused_everywhere(url: str, reason: str) -> None:
    ports = {"port": OWN_SERVICE_PORT}
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.check_url(url.format(**ports))
    assert refused.value.code == "HTTP_REFUSED"
    assert reason.format(**ports) in str(refused.value)


def test_development_and_test_settings_allow_loopback_and_private_addresses() -> None:
    for url in ("http://127.0.0.1:8000/", "http://localhost:8000/", "http://10.1.2.3/"):
        outbound.check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:8000/", "is loopback"),
        ("http://127.0.0.1:8000/", "127.0.0.1 is loopback"),
        ("http://192.168.1.20/", "192.168.1.20 is private"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
        ("http://[fd00::7]/", "fd00::7 is private"),
        ("http://localhost:80/", "is loopback"),  # allowed on port 8443 only
    ],
)
def test_production_refuses_loopback_and_private_addresses_not_allowed(
    settings, url: str, reason: str
) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    settings.BATON_HTTP_ALLOW = ["10.0.0.0/8", "localhost:8443"]
    with pytest.raises(outbound.OutboundRefused, match="list it in BATON_HTTP_ALLOW") as refused:
        outbound.check_url(url)
    assert reason in str(refused.value)


def test_production_allows_public_and_allow_listed_addresses(settings) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    settings.BATON_HTTP_ALLOW = ["10.0.0.0/8", "localhost:8443", "[fd00::1]:443"]
    for url in (
        "http://93.184.215.14/",
        "http://10.9.8.7:8080/",
        "https://localhost:8443/",
        "https://[fd00::1]/",
    ):
        outbound.check_url(url)


def test_no_allow_list_opens_the_database_or_metadata(settings) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    settings.BATON_HTTP_ALLOW = ["127.0.0.0/8", "localhost", "169.254.0.0/16"]
    with pytest.raises(outbound.OutboundRefused, match="Baton's own service"):
        outbound.check_url(f"http://localhost:{OWN_SERVICE_PORT}/")
    with pytest.raises(outbound.OutboundRefused, match="link-local"):
        outbound.check_url("http://169.254.169.254/")


def test_the_client_checks_every_connection_it_opens() -> None:
    """Without the check before the call (a registered connector that forgot it), the
    connection itself is refused; nothing reaches the listener."""
    with listening(OWN_SERVICE_HOST, OWN_SERVICE_PORT) as sock, outbound.client() as client:
        with pytest.raises(outbound.OutboundRefused, match="Baton's own service"):
            client.get(f"http://{OWN_SERVICE}/")
        assert not connected(sock)
        assert_listener_works(sock)


# -- IPv6 addresses that carry an IPv4 address: refused when the IPv4 address is --------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://[::127.0.0.1]/",
            "::7f00:1 carries the IPv4 address 127.0.0.1: 127.0.0.1 is loopback",
        ),
        (
            "http://[::ffff:0:127.0.0.1]/",
            "carries the IPv4 address 127.0.0.1: 127.0.0.1 is loopback",
        ),
        ("http://[64:ff9b::7f00:1]/", "carries the IPv4 address 127.0.0.1: 127.0.0.1 is loopback"),
        (
            "http://[64:ff9b:1::7f00:1]/",
            "carries the IPv4 address 127.0.0.1: 127.0.0.1 is loopback",
        ),
        ("http://[2002:7f00:1::]/", "carries the IPv4 address 127.0.0.1: 127.0.0.1 is loopback"),
        ("http://[::ffff:0:10.1.2.3]/", "carries the IPv4 address 10.1.2.3: 10.1.2.3 is private"),
    ],
)
def test_production_refuses_ipv6_that_carries_a_refused_ipv4_address(
    settings, url: str, reason: str
) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    with pytest.raises(outbound.OutboundRefused, match="list it in BATON_HTTP_ALLOW") as refused:
        outbound.check_url(url)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[::169.254.169.254]/",
        "http://[::ffff:0:169.254.169.254]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4
        "http://[2001:0:a9fe:a9fe::]/",  # Teredo, server 169.254.169.254
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254
    ],
)
def test_metadata_carried_in_ipv6_is_refused_everywhere(url: str) -> None:
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.check_url(url)
    assert (
        "carries the IPv4 address 169.254.169.254: 169.254.169.254 is link-local (metadata)"
        in str(refused.value)
    )


def test_an_own_service_port_carried_in_ipv6_is_refused_everywhere() -> None:
    port = OWN_SERVICE_PORT
    for host in ("::127.0.0.1", "::ffff:0:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        with pytest.raises(outbound.OutboundRefused, match=f"port {port} is Baton's own service"):
            outbound.check_url(f"http://[{host}]:{port}/")


@pytest.mark.parametrize(
    ("databases", "broker", "named"),
    [
        (
            [("django.db.backends.postgresql", "127.0.0.1", "5433")],
            "redis://127.0.0.1:6380/0",
            {("127.0.0.1", 5433, "database"), ("127.0.0.1", 6380, "broker")},
        ),
        (
            [("django.db.backends.postgresql", "db.internal", "")],
            "amqp://guest@mq.internal//",
            {("db.internal", 5432, "database"), ("mq.internal", 5672, "broker")},
        ),
        # Unix sockets (the embedded Postgres and Redis): nothing an http call can reach.
        (
            [("django.db.backends.postgresql", "/run/baton/pg", "")],
            "redis+socket:///run/r.sock",
            set(),
        ),
    ],
)
def test_the_database_and_broker_settings_name_baton_s_own_services(
    databases: list[tuple[str, str, str]], broker: str, named: set[tuple[str, int, str]]
) -> None:
    services = outbound._own_services(databases, broker)
    assert {(s.name, s.port, s.label) for s in services} == named
    policy = outbound.Policy(allow_private=True, allowed=(), services=tuple(services))
    this_machine = ipaddress.ip_address("127.0.0.2")  # another address of 127.0.0.1's host
    for host, port, label in named:
        if host == "127.0.0.1":
            assert policy.refusal("127.0.0.2", this_machine, port) == (
                f"127.0.0.2 port {port} is Baton's own {label}"
            )


def test_ipv6_that_carries_an_allowed_ipv4_address_passes(settings) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    settings.BATON_HTTP_ALLOW = ["[::1]", "10.0.0.0/8"]
    for url in (
        "http://[64:ff9b::5db8:d70e]/",
        "http://[2002:5db8:d70e::1]/",
        "http://[::1]/",
        "http://[64:ff9b::a01:203]/",
    ):
        outbound.check_url(url)


def test_every_metadata_entry_decides_its_refusal() -> None:
    """The table is the one rule for link-local and metadata addresses: no entry is
    shadowed by another check."""
    policy = outbound.current_policy()
    for network, reason in outbound.METADATA_NETWORKS:
        address = network[-1]
        assert policy.refusal(str(address), address, 80) == f"{address} is {reason}"
    assert {reason for _, reason in outbound.METADATA_NETWORKS} == {
        "link-local (metadata)",
        "a cloud metadata address",
    }


def test_the_broker_host_is_matched_without_its_trailing_dot(settings) -> None:
    """A name of Baton's broker, written with the root's dot, is still Baton's broker when it
    resolves elsewhere later (here: to a public address)."""
    settings.CELERY_BROKER_URL = "redis://Broker.Example.:6379/0"
    public = ipaddress.ip_address("93.184.215.14")
    reason = outbound.current_policy().refusal("broker.example", public, 6379)
    assert reason == "broker.example (93.184.215.14) port 6379 is Baton's own broker"
    assert outbound.current_policy().refusal("broker.example", public, 6380) is None


@pytest.mark.parametrize("option", ["proxy", "mounts", "transport"])
def test_the_client_refuses_options_that_would_connect_around_the_policy(option: str) -> None:
    import httpx

    with listening(OWN_SERVICE_HOST, OWN_SERVICE_PORT) as sock:
        proxy = f"http://{OWN_SERVICE}"
        value = {
            "proxy": proxy,
            "mounts": {"all://": httpx.HTTPTransport(proxy=proxy)},
            "transport": httpx.HTTPTransport(proxy=proxy),
        }[option]
        with pytest.raises(outbound.OutboundRefused, match=f"takes no {option}"):
            outbound.client(**{option: value})
        assert not connected(sock)


# -- which settings a process gets -------------------------------------------------------------


def python_prints(code: str, **env: str) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "BATON_HTTP_ALLOW_PRIVATE"}
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_celery_worker_defaults_to_the_production_settings() -> None:
    """`celery -A config worker` imports config.celery: without DJANGO_SETTINGS_MODULE it gets
    production's settings, which keep connectors off private addresses."""
    printed = python_prints(
        "import sys; sys.argv[0] = '/usr/local/bin/celery'; "  # as the `celery` program is
        "import config.celery; from django.conf import settings; "
        "print(settings.SETTINGS_MODULE, settings.BATON_HTTP_ALLOW_PRIVATE)",
        SECRET_KEY="a-key-for-this-test-only",
    )
    assert printed == "config.settings.prod False"
    # A program that only imports the app (the dev command, pytest) chooses its own settings.
    assert (
        python_prints("import os, config; print(os.environ.get('DJANGO_SETTINGS_MODULE'))")
        == "None"
    )


def test_private_addresses_are_refused_unless_settings_allow_them() -> None:
    printed = python_prints(
        "import importlib; print(*(importlib.import_module(f'config.settings.{m}')"
        ".BATON_HTTP_ALLOW_PRIVATE for m in ('base', 'dev', 'test')))"
    )
    assert printed == "False True True"


def test_the_development_web_server_workers_and_beat_get_the_development_settings() -> None:
    assert launch.environment({"PATH": "/bin"}, settings_module({"PATH": "/bin"})) == {
        "PATH": "/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "PYTHONUNBUFFERED": "1",
    }
    chosen = {"DJANGO_SETTINGS_MODULE": "config.settings.test"}
    assert launch.environment(chosen, settings_module(chosen))["DJANGO_SETTINGS_MODULE"] == (
        "config.settings.test"
    )


# -- end to end: a diagram's http task --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.2:{port}/", "127.0.0.2 port {port} is Baton's own service"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local (metadata)"),
        ("file:///etc/passwd", "the scheme 'file' is not allowed"),
    ],
)
def test_an_http_task_to_a_refused_address_is_an_incident_without_retries(
    celery_workers: Workers, url: str, reason: str
) -> None:
    ports = {"port": OWN_SERVICE_PORT}
    deploy_url_task("out_refused")
    instance = start_instance(key="out_refused", variables={"url": url.format(**ports)})
    assert_refused(settle(instance), reason.format(**ports))


@pytest.mark.slow
def test_nothing_connects_to_the_port_of_an_own_service(celery_workers: Workers) -> None:
    """A server listening on the port of a service of Baton's own sees no connection from
    the workers, under the address it is named by or another of this machine's."""
    with listening(OWN_SERVICE_HOST, OWN_SERVICE_PORT) as sock:
        for host in (OWN_SERVICE_HOST, "localhost"):
            key = f"out_own_{host.replace('.', '_')}"
            deploy_url_task(key)
            instance = start_instance(
                key=key, variables={"url": f"http://{host}:{OWN_SERVICE_PORT}/"}
            )
            assert_refused(settle(instance), f"port {OWN_SERVICE_PORT} is Baton's own service")
        assert not connected(sock)
        assert_listener_works(sock)


@pytest.mark.slow
def test_production_policy_refuses_a_name_that_resolves_to_loopback(settings) -> None:
    """Run here under production's policy (the workers run the test settings)."""
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    with listening("127.0.0.1") as sock:
        port = sock.getsockname()[1]
        deploy_url_task("out_prod")
        with jobs_for_no_worker():
            instance = start_instance(
                key="out_prod", variables={"url": f"http://localhost:{port}/"}
            )
        execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
        instance.refresh_from_db()
        assert_refused(instance, "is loopback; list it in BATON_HTTP_ALLOW")
        assert instance.incident is not None
        assert "localhost (" in instance.incident["error"]
        assert not connected(sock)
        assert_listener_works(sock)


@pytest.mark.slow
def test_production_policy_lets_an_allow_listed_name_through(settings, fake_api: FakeApi) -> None:
    settings.BATON_HTTP_ALLOW_PRIVATE = False
    settings.BATON_HTTP_ALLOW = [f"localhost:{fake_api.server.server_port}"]
    deploy_url_task("out_allowed")
    with jobs_for_no_worker():
        instance = start_instance(
            key="out_allowed",
            variables={
                "url": f"http://localhost:{fake_api.server.server_port}/allowed",
            },
        )
    execute_service_job(str(ServiceJob.objects.get(instance=instance).id))
    instance.refresh_from_db()
    assert instance.status == "completed"
    assert len(fake_api.requests_to("/allowed")) == 1
