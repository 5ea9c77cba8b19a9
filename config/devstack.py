"""The development and test commands: `python -m config.devstack run|test`.

`run` is one supervisor process: embedded Postgres and Redis (unless the environment names
real ones), migrations, the example diagrams, demo users, then the processes a deployment runs
(config/launch.py): gunicorn, a Celery worker for service jobs, one for timers, the sweep and
event deliveries, and the Celery beat; with BATON_RELOAD=1 Django's auto-reloading development
server instead of gunicorn. Ctrl-C (or SIGTERM) stops all of it.
`test` provides the same services to pytest and returns its exit code.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import FrameType

from . import launch
from .embedded import EmbeddedServices

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 15


def data_dir(default: str) -> Path:
    return Path(os.environ.get("BATON_DATA_DIR") or BASE_DIR / default).resolve()


def settings_module(environ: Mapping[str, str]) -> str:
    """The settings of every process `make run` starts: the development ones (no secrets to
    configure, DEBUG off unless DEBUG=1), unless DJANGO_SETTINGS_MODULE names others already.
    gunicorn's WSGI module and `celery -A config` would pick the production ones otherwise."""
    return environ.get("DJANGO_SETTINGS_MODULE") or "config.settings.dev"


def reload_requested(environ: Mapping[str, str]) -> bool:
    """BATON_RELOAD=1 (`make run RELOAD=1`): Django's auto-reloading development server
    instead of gunicorn."""
    return environ.get("BATON_RELOAD", "").strip().lower() in ("1", "true", "yes", "on")


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def manage_quietly(*args: str) -> str:
    """Run a management command and return what it printed (shown when it fails)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, capture_output=True, text=True
    )
    if done.returncode:
        print(done.stdout + done.stderr, file=sys.stderr, flush=True)
        raise subprocess.CalledProcessError(done.returncode, done.args)
    return done.stdout


class Supervisor:
    """Owns the child processes; each runs in its own session so that one Ctrl-C reaches us
    once and we stop the children in order, instead of them racing each other."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, name: str, command: list[str], env: Mapping[str, str] | None = None) -> None:
        self.children[name] = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, start_new_session=True
        )

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def first_exited(self) -> str | None:
        for name, child in self.children.items():
            if child.poll() is not None:
                return name
        return None

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # stragglers and their children
            child.wait()


def wait_for_http(url: str, supervisor: Supervisor, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not supervisor.stopping:
        if supervisor.first_exited():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own local URL)
                return True
        except OSError:
            time.sleep(0.3)
    return False


def wait_for_workers(
    celery: list[str], nodes: list[str], env: Mapping[str, str], supervisor: "Supervisor"
) -> bool:
    """Until every worker answers a ping (its start-up lines are printed by then)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not supervisor.stopping:
        if supervisor.first_exited():
            return False
        ping = subprocess.run(
            [*celery, "inspect", "ping", "--timeout", "2", "--destination", ",".join(nodes)],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if ping.returncode == 0 and all(node in ping.stdout for node in nodes):
            return True
    return False


def sandbox_summary() -> str:
    """What containment diagram scripts get on this machine (engine/bpmn/sandbox/jail.py)."""
    from engine.bpmn.sandbox import ScriptError, leases

    try:
        report = leases.isolation()
    except ScriptError as exc:
        return f"WARNING: the script sandbox does not start: {exc}"
    finally:
        leases.shutdown()
    if report["problems"]:
        return "WARNING: diagram scripts run with less isolation than they should:\n  - " + (
            "\n  - ".join(report["problems"])
        )
    return (
        f"Diagram scripts run as {report['user']} in their own "
        f"{', '.join(report['namespaces'])} namespaces, with a private root file system "
        "and a system-call filter"
    )


def public_base_url(host: str, port: str) -> str:
    """The URL diagrams reach this Baton under: BATON_BASE_URL if set, else the web server's."""
    configured = os.environ.get("BATON_BASE_URL", "").strip().rstrip("/")
    if configured:
        return configured
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 -- a wildcard bind is reached at the loopback
    return f"http://{reachable}:{port}"


def write_run_env(data: Path, base_url: str) -> Path:
    """Write the checkout's env file, which manage.py commands in another terminal read
    (config/settings/base.py), so that an instance they start calls this server."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / "baton.env"
    path.write_text(
        "# Written by `make run` at each start; manage.py commands of this checkout read it.\n"
        f"BATON_BASE_URL={base_url}\n",
        encoding="utf-8",
    )
    return path


def fresh_metrics_dir(data: Path, environ: MutableMapping[str, str]) -> Path:
    """prometheus_client's multiprocess directory for the processes started below (web,
    workers, beat), emptied: files of processes from an earlier run would be added up too.
    A directory the environment names already (PROMETHEUS_MULTIPROC_DIR) is the operator's."""
    configured = environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        return Path(configured)
    metrics = data / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    return metrics


def run() -> int:
    try:
        sizing = launch.Sizing.for_machine()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    data = data_dir(".data")
    metrics_dir = fresh_metrics_dir(data, os.environ)
    base_url = public_base_url(host, port)
    os.environ["BATON_BASE_URL"] = base_url  # the web server and workers started below
    env_file = write_run_env(data, base_url)
    supervisor = Supervisor()
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    with EmbeddedServices(data) as services:
        if services.started:
            print(f"Embedded {' and '.join(services.started)} running under {data}", flush=True)
        print(f"Broker: {os.environ['CELERY_BROKER_URL'].split('@')[-1]}", flush=True)
        manage("migrate", "--noinput", "-v", "0")
        # The demo accounts are printed last, once everything is up, where they stay in sight.
        accounts = manage_quietly("bootstrap_demo")
        print(sandbox_summary(), flush=True)
        print(f"Diagrams reach Baton at {base_url} (BATON_BASE_URL, in {env_file})", flush=True)
        print(f"Prometheus metrics at {base_url}/metrics (from {metrics_dir})", flush=True)
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        host_name = socket.gethostname()
        # The processes and their sizes are config/launch.py's: the benchmarks and the fault
        # tests start the same ones.
        env = launch.environment(os.environ, settings_module(os.environ))
        reload = reload_requested(os.environ)
        bind = f"{host}:{port}"
        if reload:
            print("Auto-reload on (BATON_RELOAD): Django's development server", flush=True)
            supervisor.start("web", launch.reloading_web_command(bind), env=env)
        else:
            print(f"Processes: {sizing.describe()}", flush=True)
            supervisor.start("web", launch.web_command(bind, sizing), env=env)
        supervisor.start("worker", launch.jobs_worker_command(env, sizing), env=env)
        supervisor.start("events", launch.events_worker_command(env, sizing), env=env)
        supervisor.start("beat", launch.beat_command(str(data / "celerybeat-schedule")), env=env)
        url = f"http://{host}:{port}/"
        exit_code = 0
        workers = [f"jobs@{host_name}", f"events@{host_name}"]
        if wait_for_http(f"{url}accounts/login/", supervisor):
            ready = wait_for_workers(celery, workers, env, supervisor)
            if not ready and not supervisor.stopping:
                print("The Celery workers did not answer yet.", file=sys.stderr, flush=True)
            print(accounts, flush=True)
            print(f"Baton is running at {url}  (Ctrl-C stops everything)\n", flush=True)
        while not supervisor.stopping:
            failed = supervisor.first_exited()
            if failed:
                print(f"The {failed} process exited; stopping Baton.", file=sys.stderr)
                exit_code = 1
                break
            time.sleep(0.5)
        print("Stopping Baton ...", flush=True)
        supervisor.stop_all()
    print("Baton stopped.", flush=True)
    return exit_code


def test(pytest_args: list[str]) -> int:
    with EmbeddedServices(data_dir(".data/test")):
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR, check=False
        ).returncode


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        return run()
    if command == "test":
        return test(sys.argv[2:])
    print("usage: python -m config.devstack run | test [pytest arguments]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
