"""The README's run command, as a new user runs it: embedded services, demo accounts, the
example approval through the API, a browser-style login, and Ctrl-C stopping everything."""

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from bench.common import free_port
from tests.faults.stack import wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
ACCOUNT_LINE = re.compile(r"^\s+(\w+)\s+(\S+)\s+(\S+)\s+([0-9a-f]{40})\s*$")


class Output:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        try:
            wait_until(lambda: any(text in line for line in self.lines), timeout, poll=0.2)
        except AssertionError:
            raise AssertionError(
                f"{text!r} not printed; output:\n" + "\n".join(self.lines[-80:])
            ) from None


def processes_mentioning(*needles: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(needle in cmdline for needle in needles):
            found.append(proc)
    return found


@pytest.mark.slow
def test_run_command_serves_baton_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    skipped = {"DATABASE_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in skipped}
    env.update(PORT=str(port), BATON_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    env.update(WEB_WORKERS="3", WEB_THREADS="2")  # sizes from the environment
    # Metrics files of an earlier run: the run starts with an empty directory.
    (tmp_path / "data" / "metrics").mkdir(parents=True)
    (tmp_path / "data" / "metrics" / "counter_999999.db").write_bytes(b"left over")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(supervisor)
    try:
        output.wait_for(f"Baton is running at http://127.0.0.1:{port}/", timeout=180)
        # manage.py commands in another shell read the URL diagrams reach Baton under.
        env_file = (tmp_path / "data" / "baton.env").read_text()
        assert f"BATON_BASE_URL=http://127.0.0.1:{port}\n" in env_file
        accounts = printed_accounts(output.lines)
        assert {"designer", "operator", "approver1", "approver2"} <= accounts.keys()
        # The credentials come last, after the workers and the beat started (their start-up
        # lines do not push them out of sight), and the beat's routine ticks stay quiet.
        first_account = next(i for i, line in enumerate(output.lines) if ACCOUNT_LINE.match(line))
        ready = [i for i, line in enumerate(output.lines) if line.rstrip().endswith(" ready.")]
        assert ready and max(ready) < first_account, "\n".join(output.lines)
        base = f"http://127.0.0.1:{port}"
        descendants = psutil.Process(supervisor.pid).children(recursive=True)
        # The web server is gunicorn with the number of workers the environment asked for.
        [web] = [p for p in psutil.Process(supervisor.pid).children() if "gunicorn" in p.cmdline()]
        command = web.cmdline()
        assert command[command.index("--workers") + 1] == "3", command
        assert command[command.index("--threads") + 1] == "2", command
        assert len([c for c in web.children() if c.cmdline() == web.cmdline()]) == 3
        broker = next(line for line in output.lines if line.startswith("Broker: redis+socket://"))
        redis_dir = str(Path(broker.split("redis+socket://")[1].strip()).parent)

        # A person logs in with the printed password and lands on the inbox.
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            browser.get("/accounts/login/")
            page = browser.post(
                "/accounts/login/",
                data={
                    "username": "approver1",
                    "password": accounts["approver1"][0],
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
            )
            assert page.status_code == 200
            assert "<h1>Tasks</h1>" in page.text and "approver1" in page.text
            # DEBUG is off (no debug pages with settings for anyone), static files still work.
            assert browser.get("/static/baton/baton.css").status_code == 200
            missing = browser.get("/no-such-page/")
            assert missing.status_code == 404 and "URLconf" not in missing.text
            # The web server is gunicorn (the processes of config/launch.py), not runserver.
            assert missing.headers["Server"] == "gunicorn"
            assert browser.get("/api/v1/nothing/").headers["Content-Type"] == (
                "application/problem+json"
            )

        # The example approval, started and completed through the API with printed tokens.
        designer = {"Authorization": f"Token {accounts['designer'][1]}"}
        approver = {"Authorization": f"Token {accounts['approver1'][1]}"}
        started = httpx.post(
            f"{base}/api/v1/definitions/expense_approval/start/",
            headers=designer,
            json={"variables": {"amount": 80, "description": "Lunch", "requester": "bob"}},
        )
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]
        tasks = httpx.get(f"{base}/api/v1/tasks/?instance={instance_id}", headers=approver).json()
        assert tasks["count"] == 1
        done = httpx.post(
            f"{base}/api/v1/tasks/{tasks['results'][0]['id']}/complete/",
            headers=approver,
            json={"variables": {"decision": "approve", "comment": "ok"}},
        )
        assert done.status_code == 200, done.text
        instance = httpx.get(f"{base}/api/v1/instances/{instance_id}/", headers=approver).json()
        assert instance["status"] == "completed"
        assert instance["variables"]["outcome"] == "approved"
        # Prometheus on this machine scrapes without a token; the start and the completion
        # were counted by the web process, in the emptied multiprocess directory.
        assert not (tmp_path / "data" / "metrics" / "counter_999999.db").exists()
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        for name in ("baton_instances_started_total", "baton_instances_completed_total"):
            assert f'{name}{{process="expense_approval"}} 1.0' in metrics.text
    finally:
        supervisor.send_signal(signal.SIGINT)
        returncode = supervisor.wait(timeout=90)
    output.thread.join(timeout=5)
    assert returncode == 0, "\n".join(output.lines[-40:])
    assert "Baton stopped." in output.lines

    def alive() -> list[psutil.Process]:
        return [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    wait_until(lambda: not alive(), timeout=30, what="every child process to end")
    assert processes_mentioning(str(tmp_path), redis_dir) == []


@pytest.mark.slow
def test_the_reload_flag_serves_with_the_auto_reloading_development_server(
    tmp_path: Path,
) -> None:
    """`make run RELOAD=1` (BATON_RELOAD=1): Django's runserver, static files still served."""
    port = free_port()
    skipped = {"DATABASE_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in skipped}
    env.update(
        PORT=str(port),
        BATON_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
        BATON_RELOAD="1",
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(supervisor)
    try:
        output.wait_for(f"Baton is running at http://127.0.0.1:{port}/", timeout=180)
        base = f"http://127.0.0.1:{port}"
        login = httpx.get(f"{base}/accounts/login/")
        assert login.status_code == 200
        assert login.headers["Server"].startswith("WSGIServer/"), login.headers
        assert httpx.get(f"{base}/static/baton/baton.css").status_code == 200
        missing = httpx.get(f"{base}/no-such-page/")
        assert missing.status_code == 404 and "URLconf" not in missing.text
    finally:
        supervisor.send_signal(signal.SIGINT)
        returncode = supervisor.wait(timeout=90)
    output.thread.join(timeout=5)
    assert returncode == 0, "\n".join(output.lines[-40:])
    assert "Baton stopped." in output.lines


def _base_url_seen_by_manage_py(
    data_dir: Path, settings: str = "config.settings.dev", **extra: str
) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in {"BATON_BASE_URL", "PORT", "BATON_DATA_DIR"}
    }
    env.update(BATON_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE=settings, **extra)
    shown = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.BATON_BASE_URL)",
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip().splitlines()[-1]


def test_manage_py_commands_call_the_base_url_make_run_wrote(tmp_path: Path) -> None:
    from config.devstack import public_base_url, write_run_env

    data = tmp_path / "data"
    assert _base_url_seen_by_manage_py(data) == "http://127.0.0.1:8000"
    # `make run` on port 8123 writes its URL; a command in another shell (no PORT) uses it.
    write_run_env(data, public_base_url("0.0.0.0", "8123"))  # noqa: S104 -- what a user may pass
    assert _base_url_seen_by_manage_py(data) == "http://127.0.0.1:8123"
    # Production never reads the file: its public URL comes from its environment.
    production = {"SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-" + "y" * 20}
    assert (
        _base_url_seen_by_manage_py(data, "config.settings.prod", **production)
        == "http://127.0.0.1:8000"
    )
    # BATON_BASE_URL names the public URL; the environment wins over the file.
    assert (
        _base_url_seen_by_manage_py(data, BATON_BASE_URL="https://baton.example.org/")
        == "https://baton.example.org"
    )


def printed_accounts(lines: list[str]) -> dict[str, tuple[str, str]]:
    """user -> (password, API token), from the table the run command prints."""
    return {m.group(1): (m.group(2), m.group(4)) for m in map(ACCOUNT_LINE.match, lines) if m}


@pytest.mark.django_db
def test_every_start_prints_fresh_passwords_and_tokens(expense_definition) -> None:
    """What `make run` does on each start (bootstrap_demo): the README promises new passwords
    and new API tokens, and the previous start's token stops working."""
    from io import StringIO

    from django.core.management import call_command
    from rest_framework.test import APIClient

    def start() -> dict[str, tuple[str, str]]:
        out = StringIO()
        call_command("bootstrap_demo", stdout=out)
        return printed_accounts(out.getvalue().splitlines())

    first, second = start(), start()
    assert first.keys() == second.keys() == {"designer", "operator", "approver1", "approver2"}
    for user in first:
        assert first[user][0] != second[user][0], user  # password
        assert first[user][1] != second[user][1], user  # token

    def definitions_with(token: str) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.get("/api/v1/definitions/").status_code

    assert definitions_with(first["designer"][1]) == 401
    assert definitions_with(second["designer"][1]) == 200


def test_development_settings_have_debug_off_unless_asked() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
    command = [sys.executable, "-c", "from django.conf import settings; print(settings.DEBUG)"]
    default = subprocess.run(
        command, cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    asked = subprocess.run(
        command, cwd=BASE_DIR, env={**env, "DEBUG": "1"}, capture_output=True, text=True, check=True
    )
    assert (default.stdout.strip(), asked.stdout.strip()) == ("False", "True")


def test_process_sizes_come_from_the_cpus_unless_the_environment_names_them() -> None:
    from config.launch import Sizing

    cpus = os.cpu_count() or 1
    assert Sizing.for_machine({}) == Sizing(
        web_workers=cpus, web_threads=4, job_concurrency=2 * cpus, events_concurrency=1
    )
    chosen = {"WEB_WORKERS": "3", "WEB_THREADS": "8", "JOB_CONCURRENCY": "6"}
    assert Sizing.for_machine(chosen) == Sizing(3, 8, 6, 1)
    for wrong in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="WEB_WORKERS"):
            Sizing.for_machine({"WEB_WORKERS": wrong})


def test_make_run_refuses_a_wrong_size_before_starting_anything(tmp_path: Path) -> None:
    env = {**os.environ, "WEB_WORKERS": "many", "BATON_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "WEB_WORKERS must be a whole number, not 'many'" in done.stderr
    assert not (tmp_path / "data").exists()
