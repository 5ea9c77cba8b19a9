"""The operating-system side of the script sandbox (engine/bpmn/sandbox/jail.py): even a
script that escaped every Python-level guard, with the real `os` and `open` in hand, finds
nothing worth stealing and nothing to reach.

The probe below is that escaped script: a process that contains itself exactly as the zygote
does (`process_main.prepare`), then, with full Python, tries to read the engine's
environment, the project's settings and data, to reach Postgres over TCP and its Unix socket,
to write files, to start processes and to get root back.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine.bpmn.sandbox import leases
from engine.bpmn.sandbox.jail import SANDBOX_USER
from engine.bpmn.scripting import build_script_engine, script_context
from tests.engine.service_fixtures import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "baton-test-secret-in-the-engine-environment-5f2c"

PROBE = textwrap.dedent("""
    import json, os, resource, socket, sys
    root, user, engine_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, root)
    from engine.bpmn.sandbox import jail, process_main
    isolation = process_main.prepare(user)
    jail.limit_process(256, syscall_filter=isolation.syscall_filter)
    results = {}

    def attempt(name, action):
        try:
            action()
        except BaseException as exc:
            results[name] = "refused: " + type(exc).__name__
        else:
            results[name] = "ALLOWED"

    def read(path):
        with open(path, "rb") as f:
            f.read(1)

    def connect_tcp(port):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    def connect_unix(path):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(path)

    def write(path):
        with open(path, "w") as f:
            f.write("escaped")

    def fork():
        pid = os.fork()
        if pid == 0:
            os._exit(0)

    attempt("read the engine's environment", lambda: read(f"/proc/{engine_pid}/environ"))
    attempt("read its own parent's environment", lambda: read(f"/proc/{os.getppid()}/environ"))
    attempt("read the project's settings", lambda: read(root + "/config/settings/base.py"))
    attempt("list the project's data", lambda: os.listdir(root + "/.data"))
    attempt("read /etc/passwd", lambda: read("/etc/passwd"))
    attempt("list /home", lambda: os.listdir("/home"))
    attempt("list the project's packages", lambda: os.listdir(root + "/.venv"))
    attempt("list /proc", lambda: os.listdir("/proc"))
    attempt("connect to Postgres over TCP", lambda: connect_tcp(5432))
    attempt("connect to Redis over TCP", lambda: connect_tcp(6379))
    attempt("connect to Postgres's Unix socket",
            lambda: connect_unix("/var/run/postgresql/.s.PGSQL.5432"))
    attempt("write into the working directory", lambda: write("escaped.txt"))
    attempt("write into /tmp", lambda: write("/tmp/baton-escaped.txt"))
    attempt("start a process", fork)
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    attempt("raise the memory limit",
            lambda: resource.setrlimit(resource.RLIMIT_AS, unlimited))
    attempt("raise the process limit", lambda: resource.setrlimit(resource.RLIMIT_NPROC, (1, 1)))
    attempt("signal the engine", lambda: os.kill(engine_pid, 0))
    attempt("signal the zygote", lambda: os.kill(1, 15))
    attempt("open a socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    attempt("run a program", lambda: os.execv("/bin/sh", ["sh"]))
    attempt("become root", lambda: os.setuid(0))
    print(json.dumps({
        "isolation": isolation.as_dict(), "results": results, "uid": os.getuid(),
        "cwd": os.getcwd(), "root": sorted(os.listdir("/")), "environ": dict(os.environ),
    }), flush=True)
""")


def run_probe(python: str, *, user: int | None = None, extra_path: str = "") -> dict[str, Any]:
    env = {"PATH": os.defpath, "LANG": "C.UTF-8"}
    if extra_path:
        env["PYTHONPATH"] = extra_path
    result = subprocess.run(
        [python, "-c", PROBE, str(ROOT), SANDBOX_USER, str(os.getpid())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        user=user,
        group=user,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(autouse=True)
def _a_secret_in_our_environment(monkeypatch):
    """What an escaped script would be after: a secret in the engine's own environment."""
    monkeypatch.setenv("BATON_TEST_SECRET", SECRET)


def assert_contained(report: dict[str, Any]) -> None:
    allowed = [name for name, outcome in report["results"].items() if outcome == "ALLOWED"]
    assert allowed == [], report
    assert report["environ"].keys() <= {"PATH", "LANG", "LC_ALL", "PYTHONPATH"}
    assert report["cwd"] == "/work"
    assert not Path("/tmp/baton-escaped.txt").exists()  # noqa: S108


@pytest.mark.skipif(os.geteuid() != 0, reason="the user switch needs root; see the next test")
def test_an_escaped_script_as_root_s_sandbox_user_finds_nothing_to_steal():
    report = run_probe(sys.executable)

    assert report["isolation"]["problems"] == []
    assert report["isolation"]["syscall_filter"]
    assert report["isolation"]["user"] == SANDBOX_USER
    assert set(report["isolation"]["namespaces"]) >= {"network", "mount", "pid"}
    assert report["uid"] == pwd.getpwnam(SANDBOX_USER).pw_uid
    assert_contained(report)
    # Only the standard library is there (below its own path) and the working directory.
    stdlib_top = Path(os.__file__).parts[1]
    assert set(report["root"]) == {stdlib_top, "work"}, report["root"]


def test_without_root_a_user_namespace_contains_the_sandbox_just_as_well():
    """As an ordinary account (a developer's machine): no user switch, but a user namespace
    gives the same namespaces, the private root and no capabilities."""
    if os.geteuid() != 0:
        report = run_probe(sys.executable)
    else:
        # As root, act as an ordinary account: Debian's own interpreter as 'nobody' (the
        # project's interpreter lives under /root, which 'nobody' cannot enter).
        python = shutil.which("python3.11", path="/usr/bin")
        if python is None:
            pytest.skip("no interpreter outside /root to run as another account")
        site = next(ROOT.glob(".venv/lib/python3.*/site-packages"))
        report = run_probe(python, user=pwd.getpwnam("nobody").pw_uid, extra_path=str(site))
    assert report["isolation"]["problems"] == [], report["isolation"]
    assert "user" in report["isolation"]["namespaces"]
    assert_contained(report)


@pytest.mark.django_db
def test_the_engine_s_sandbox_processes_run_contained():
    """The processes that really run diagram scripts: the sandbox account, their own network
    and mount namespaces and root, an empty environment, and only their own socket."""
    environment = build_script_engine().environment
    with script_context(user=None, reuse_key="definition jail-test"):
        context: dict[str, Any] = {}
        environment.execute("x = len('abc')", context)
    assert context["x"] == 3

    zygote = leases._pool.zygote
    assert zygote is not None and zygote.isolation["problems"] == []
    launcher = psutil.Process(zygote.process.pid)
    (init,) = launcher.children()
    sandboxes = init.children()
    assert sandboxes, "the sandbox process of the definition waits for its next operation"
    mine = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "mnt", "pid")}
    assert contained(init, mine, is_init=True)
    # A spare may be forked this very moment: wait until each one is past its start-up.
    wait_until(
        lambda: all(settled(p) for p in init.children()),
        timeout=30,
        what="the sandbox processes to finish starting",
    )
    checked = [p.pid for p in init.children() if contained(p, mine, is_init=False)]
    assert checked


def settled(process: psutil.Process) -> bool:
    try:
        return len(os.listdir(f"/proc/{process.pid}/fd")) <= 4
    except FileNotFoundError:
        return True


def contained(process: psutil.Process, mine: dict[str, str], *, is_init: bool) -> bool:
    """Check one process; False when it ended meanwhile (a process of an earlier test)."""
    proc = f"/proc/{process.pid}"
    try:
        assert process.username() == SANDBOX_USER
        for kind, namespace in mine.items():
            # PID 1 of the new PID namespace is itself a member of ours.
            assert os.readlink(f"{proc}/ns/{kind}") != namespace or (kind == "pid" and is_init)
        assert os.readlink(f"{proc}/root") != "/"
        environ = Path(f"{proc}/environ").read_bytes()
        names = {item.split(b"=", 1)[0] for item in environ.split(b"\0") if item}
        assert names <= {b"PATH", b"LANG", b"LC_ALL"}
        assert SECRET.encode() not in environ
        if not is_init:
            descriptors = sorted(int(fd) for fd in os.listdir(f"{proc}/fd"))
            assert descriptors[:3] == [0, 1, 2] and len(descriptors) == 4, descriptors
            targets = {os.readlink(f"{proc}/fd/{fd}") for fd in descriptors}
            assert targets - {"/dev/null"} and all(
                t == "/dev/null" or t.startswith("socket:") for t in targets
            ), targets
    except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
        return False
    return True
