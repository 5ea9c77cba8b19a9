"""The script sandbox (DESIGN section 8, issue 9): restricted scripts with time and size limits,
and what a failing script does to its instance (an incident, not a rollback), through the
service functions on real Postgres, a couple through the API, one on a real Celery worker."""

from xml.sax.saxutils import escape

import pytest

from engine.bpmn.scripting import (
    ScriptLimitExceeded,
    ScriptNotAllowed,
    ScriptTimeLimitExceeded,
    build_script_engine,
    script_context,
)
from engine.exceptions import Conflict
from engine.models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.services import (
    complete_human_task,
    retry_instance,
    set_variables,
    start_instance,
    suspend_instance,
)
from engine.services.lifecycle import resume_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.helpers import build_bpmn

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_sandbox" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def script_process(key: str, script: str, *, time_limit: str | None = None) -> str:
    """start -> script task `work` -> end, optionally with a scriptTimeLimit property."""
    properties = (
        "<bpmn:extensionElements><camunda:properties>"
        f'<camunda:property name="scriptTimeLimit" value="{time_limit}" />'
        "</camunda:properties></bpmn:extensionElements>"
        if time_limit
        else ""
    )
    return (
        HEADER + f'  <bpmn:process id="{key}" isExecutable="true">{properties}\n'
        '    <bpmn:startEvent id="start" />\n'
        '    <bpmn:scriptTask id="work" name="Work" scriptFormat="python">'
        f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>\n"
        '    <bpmn:endEvent id="end" />\n'
        '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />\n'
        '    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />\n'
        "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def spiff_user_task_process(key: str, *, pre: str = "", post: str = "") -> str:
    """start -> user task `ask` with Spiff pre/post-scripts -> end (SpiffArena dialect)."""
    scripts = ""
    if pre:
        scripts += f"<spiffworkflow:preScript>{escape(pre)}</spiffworkflow:preScript>"
    if post:
        scripts += f"<spiffworkflow:postScript>{escape(post)}</spiffworkflow:postScript>"
    return (
        HEADER + f'  <bpmn:process id="{key}" isExecutable="true">\n'
        '    <bpmn:startEvent id="start" />\n'
        '    <bpmn:userTask id="ask" name="Ask">'
        f"<bpmn:extensionElements>{scripts}</bpmn:extensionElements></bpmn:userTask>\n"
        '    <bpmn:endEvent id="end" />\n'
        '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />\n'
        '    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />\n'
        "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def event_types(instance: ProcessInstance) -> list[str]:
    return list(InstanceEvent.objects.filter(instance=instance).values_list("type", flat=True))


@pytest.fixture
def quick_limit(settings):
    settings.BATON_SCRIPT_TIME_LIMIT_SECONDS = 0.5
    return 0.5


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


# --- scripts that must not run -------------------------------------------------------------

FORBIDDEN = [
    ("__import__('os').system('id')", '"__import__" is an invalid variable name'),
    ("import os", "Importing 'os' is not allowed"),
    ("open('/etc/passwd').read()", "open() is not available"),
    ("().__class__.__mro__[1].__subclasses__()", "is an invalid attribute name"),
    ("(lambda: 0).__globals__", '"__globals__" is an invalid attribute name'),
    ("'{0.__class__}'.format(1)", "attribute '__class__' is not allowed"),
    ("getattr(1, '__class__')", "attribute '__class__' is not allowed"),
    ("eval('1')", "Eval calls are not allowed"),
    ("exec('x=1')", "Exec calls are not allowed"),
    ("while True: pass", "time limit of 0.5 s"),
    ("10**10**10", "numbers of at most 100,000 bits"),
    ("'x' * 10**10", "a text of 10,000,000,000 characters"),
    ("[0] * 10**9", "a list of 1,000,000,000 items"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("script", "reason"), FORBIDDEN, ids=[s for s, _ in FORBIDDEN])
def test_a_forbidden_script_fails_its_task_into_an_incident(quick_limit, script, reason):
    deploy_xml("evil", script_process("evil", f"result = 1\n{script}\nafter = 2"))

    instance = start_instance(key="evil", variables={"n": 1})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["kind"] == "script"
    assert instance.incident["element_id"] == "work"
    assert reason in instance.incident["error"], instance.incident["error"]
    # The whole script failed: nothing it assigned before the failure was kept.
    assert instance.variables == {"n": 1}
    event = InstanceEvent.objects.get(instance=instance, type="incident")
    assert (event.element_id, event.payload["kind"]) == ("work", "script")
    assert reason in event.payload["error"]

    # The process that ran it lives on and serves the next instance.
    deploy_xml("fine", script_process("fine", "total = n * 2"))
    other = start_instance(key="fine", variables={"n": 21})
    assert (other.status, other.variables["total"]) == ("completed", 42)


@pytest.mark.django_db
def test_allowed_scripts_use_dates_math_data_and_the_helpers(make_user):
    ann = make_user("ann", "staff")
    deploy_xml(
        "allowed",
        script_process(
            "allowed",
            "\n".join(
                [
                    "import datetime",
                    "import json",
                    "import math",
                    "import statistics",
                    "from decimal import Decimal as D",
                    "now = datetime.datetime.now()",
                    "next_week = (date(2024, 1, 1) + timedelta(days=7)).isoformat()",
                    "root = math.sqrt(16) + math.floor(2.5)",
                    "total = str(D('1.10') + Decimal('2.20'))",
                    "payload = json.dumps({'b': [1, 2], 'a': None}, sort_keys=True)",
                    "squares = [i * i for i in range(5) if i % 2 == 0]",
                    "lengths = {name: len(name) for name in ['ann', 'bob']}",
                    "order = {'items': [], 'count': 0}",
                    "order['items'].append('tea')",
                    "order['count'] += 1",
                    "mean = statistics.mean([1, 2, 3])",
                    "label = f'{n:>4}|{total}'",
                    "who = get_current_user()['username']",
                    "groups = get_current_user()['groups']",
                    "me = instance_id()",
                    "def double(x):",
                    "    return x * 2",
                    "doubled = double(n)",
                ]
            ),
        ),
    )
    instance = start_instance(key="allowed", variables={"n": 3}, actor=ann)

    assert instance.status == ProcessInstance.Status.COMPLETED, instance.incident
    variables = instance.variables
    assert variables["next_week"] == "2024-01-08"
    assert variables["root"] == 6.0
    assert variables["total"] == "3.30"
    assert variables["payload"] == '{"a": null, "b": [1, 2]}'
    assert variables["squares"] == [0, 4, 16]
    assert variables["lengths"] == {"ann": 3, "bob": 3}
    assert variables["order"] == {"items": ["tea"], "count": 1}
    assert variables["mean"] == 2
    assert variables["label"] == "   3|3.30"
    assert (variables["who"], variables["groups"]) == ("ann", ["staff"])
    assert variables["me"] == str(instance.pk)
    assert variables["doubled"] == 6
    assert variables["now"]  # a datetime, stored as text in the variables snapshot
    assert "double" not in variables and "json" not in variables  # no functions, no modules


@pytest.mark.django_db
def test_an_operator_fixes_the_variables_and_retries_a_script_incident(operator):
    deploy_xml("rates", script_process("rates", "total = amount * rate"))
    instance = start_instance(key="rates", variables={"amount": 2})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert "NameError: name 'rate' is not defined" in instance.incident["error"]
    assert instance.incident["attempts"] == 1

    # Retrying without a fix fails again: a new incident event, one more attempt.
    retry_instance(instance_id=str(instance.pk), actor=operator)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["attempts"] == 2
    assert event_types(instance).count("incident") == 2

    set_variables(instance_id=instance.pk, actor=operator, variables={"rate": 3})
    retried = retry_instance(instance_id=str(instance.pk), actor=operator).instance

    assert retried.status == ProcessInstance.Status.COMPLETED
    instance.refresh_from_db()
    assert instance.incident is None
    assert instance.variables["total"] == 6
    assert event_types(instance)[-4:] == [
        "incident",
        "variables_changed",
        "task_retried",
        "completed",
    ]
    retry_events = InstanceEvent.objects.filter(instance=instance, type="task_retried")
    assert [(e.element_id, e.actor) for e in retry_events] == [("work", operator)] * 2
    with pytest.raises(Conflict):
        retry_instance(instance_id=str(instance.pk), actor=operator)


@pytest.mark.django_db
def test_a_failing_gateway_condition_is_an_incident_at_the_gateway(approver, operator):
    deploy_xml("gate", build_bpmn("gate", condition="amount > limit"))
    instance = start_instance(key="gate", variables={"amount": 5})
    complete_human_task(task_id=instance.human_tasks.get().pk, user=approver)

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "decide"
    assert "limit" in instance.incident["error"]

    set_variables(instance_id=instance.pk, actor=operator, variables={"limit": 1})
    assert (
        retry_instance(instance_id=str(instance.pk), actor=operator).instance.status == "completed"
    )


@pytest.mark.django_db
def test_a_failing_assignment_expression_is_an_incident_at_the_user_task(operator):
    deploy_xml(
        "assign",
        build_bpmn(
            "assign",
            assignment='camunda:candidateGroups="${groups_of[dept]}"',
        ),
    )
    instance = start_instance(key="assign", variables={"dept": "sales"})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "review"
    assert "groups_of" in instance.incident["error"]
    assert not instance.human_tasks.exists()

    set_variables(
        instance_id=instance.pk, actor=operator, variables={"groups_of": {"sales": "managers"}}
    )
    retry_instance(instance_id=str(instance.pk), actor=operator)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.human_tasks.get().candidate_groups == ["managers"]


@pytest.mark.django_db
def test_a_failing_connector_parameter_is_an_incident_at_the_service_task(operator):
    from tests.engine.service_diagrams import sequence, service_task

    deploy_xml("params", sequence("params", [service_task("call", 'api + "/x"')]))
    instance = start_instance(key="params", variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "call"
    assert not ServiceJob.objects.exists()

    set_variables(instance_id=instance.pk, actor=operator, variables={"api": "http://h"})
    retry_instance(instance_id=str(instance.pk), actor=operator)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.RUNNING
    assert ServiceJob.objects.get(instance=instance).parameters["url"] == "http://h/x"


@pytest.mark.django_db
def test_spiff_pre_and_post_script_failures_are_retried_where_they_failed(approver, operator):
    deploy_xml(
        "prepost",
        spiff_user_task_process(
            "prepost",
            pre="greeting = 'hello ' + name",
            post="reply = answer.upper()",
        ),
    )
    instance = start_instance(key="prepost", variables={}, actor=approver)
    instance.refresh_from_db()
    assert instance.incident is not None
    assert (instance.status, instance.incident["element_id"]) == ("incident", "ask")
    assert "Pre-Script" in instance.incident["error"]

    set_variables(instance_id=instance.pk, actor=operator, variables={"name": "ann"})
    retry_instance(instance_id=str(instance.pk), actor=operator)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.variables["greeting"] == "hello ann"
    task = instance.human_tasks.get()

    # The post-script fails after the submission: the completion is kept...
    complete_human_task(task_id=task.pk, user=approver, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert "Post-Script" in instance.incident["error"]
    task.refresh_from_db()
    assert task.status == HumanTask.Status.COMPLETED

    # ...and the retry runs the post-script again, without asking the person again.
    set_variables(instance_id=instance.pk, actor=operator, variables={"answer": "yes"})
    retry_instance(instance_id=str(instance.pk), actor=operator)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["reply"] == "YES"
    assert instance.human_tasks.count() == 1


@pytest.mark.django_db
def test_a_process_sets_its_own_time_limit(settings):
    settings.BATON_SCRIPT_TIME_LIMIT_SECONDS = 30
    deploy_xml("hurry", script_process("hurry", "while True: pass", time_limit="0.3"))
    instance = start_instance(key="hurry", variables={})
    instance.refresh_from_db()
    assert instance.incident is not None
    assert "time limit of 0.3 s" in instance.incident["error"]


@pytest.mark.django_db
def test_suspend_and_resume_keep_a_script_incident(operator):
    deploy_xml("broken", script_process("broken", "x = 1/0"))
    instance = start_instance(key="broken", variables={})
    suspend_instance(instance_id=instance.pk, actor=operator)
    resumed = resume_instance(instance_id=instance.pk, actor=operator)
    assert resumed.status == ProcessInstance.Status.INCIDENT


# --- through the API ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_starts_into_an_incident_and_an_operator_repairs_it(
    api_client_for, make_user, operator
):
    designer = make_user("dora", "designers")
    deploy_xml("api_rates", script_process("api_rates", "total = amount * rate"))
    started = api_client_for(designer).post(
        "/api/v1/definitions/api_rates/start/",
        {"variables": {"amount": 2}},
        format="json",
    )
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["status"] == "incident"
    incident = body["incident"]
    assert (incident["kind"], incident["job"], incident["element_id"]) == ("script", None, "work")
    assert "name 'rate' is not defined" in incident["error"]

    url = f"/api/v1/instances/{body['id']}"
    fixed = api_client_for(operator).patch(
        f"{url}/variables/", {"variables": {"rate": 5}}, format="json"
    )
    assert fixed.status_code == 200
    retried = api_client_for(operator).post(f"{url}/retry/")
    assert retried.status_code == 200, retried.content
    assert retried.json()["status"] == "completed"
    assert retried.json()["incident"] is None
    assert retried.json()["variables"]["total"] == 10


# --- the sandbox itself ----------------------------------------------------------------------


def run_script(source: str, data: dict | None = None, limit: float = 0.3) -> dict:
    environment = build_script_engine().environment
    context = dict(data or {})
    with script_context(user=None, time_limit=limit):
        environment.execute(source, context)
    return context


def test_a_c_level_runaway_is_stopped_by_killing_its_sandbox():
    # Comparing two aliased structures runs in one C call that no trace function can stop.
    with pytest.raises(ScriptTimeLimitExceeded, match="sandbox process was killed"):
        run_script("a = [0] * 10**6\nb = [a] * 10**6\nc = [list(a)] * 10**6\nsame = b == c")
    assert run_script("y = x + 1", {"x": 1})["y"] == 2  # a new sandbox serves the next one


def test_memory_and_data_size_limits():
    with pytest.raises(ScriptLimitExceeded, match="out of memory"):
        run_script("x = ['x' * 9_000_000 + str(i) for i in range(200)]", limit=5)
    with pytest.raises(ScriptLimitExceeded, match="left data beyond the limits"):
        run_script("a = [0] * 1000\nb = [a] * 1000\nc = [b] * 1000", limit=5)
    with pytest.raises(ScriptLimitExceeded, match="formatted field"):
        run_script("s = f'{1:>1000000000}'")
    with pytest.raises(ScriptNotAllowed, match="iter"):
        run_script("it = list(iter(int, 1))")
    assert run_script("z = 2 ** 64")["z"] == 2**64


def test_catching_the_timeout_does_not_help():
    with pytest.raises(ScriptTimeLimitExceeded):
        run_script("while True:\n    try:\n        while True: pass\n    except:\n        pass")


def test_scripts_keep_task_data_semantics():
    context = run_script(
        "del drop\nkept = [1, 2]\nkept.append(3)\npair = (1, 'a')\nseen = {1}\n"
        "when = date(2024, 1, 2)\nimport math\nf = lambda v: v",
        {"drop": 1, "_internal": {"x": 1}, "other": {"nested": [1]}},
    )
    assert context == {
        "kept": [1, 2, 3],
        "pair": (1, "a"),
        "seen": {1},
        "when": __import__("datetime").date(2024, 1, 2),
        "_internal": {"x": 1},
        "other": {"nested": [1]},
    }


# --- on a real Celery worker -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_runaway_script_on_a_worker_is_an_incident_and_the_worker_serves_on(
    celery_workers, fake_api
):
    from tests.engine.service_diagrams import sequence, service_task
    from tests.engine.service_fixtures import Reply, wait_until

    fake_api.reply("/ping", Reply(body={"pong": True}))
    deploy_xml(
        "worker_loop",
        sequence(
            "worker_loop",
            [
                service_task("call", 'api + "/ping"'),
                '    <bpmn:scriptTask id="spin" scriptFormat="python">'
                "<bpmn:script>while True: pass</bpmn:script></bpmn:scriptTask>\n",
            ],
        ),
    )
    deploy_xml(
        "worker_ok",
        sequence(
            "worker_ok",
            [
                service_task("call", 'api + "/ping"'),
                '    <bpmn:scriptTask id="sum" scriptFormat="python">'
                "<bpmn:script>total = 1 + 2</bpmn:script></bpmn:scriptTask>\n",
            ],
        ),
    )
    looping = start_instance(key="worker_loop", variables={"api": fake_api.base_url})
    pids = {p.pid for p in celery_workers.pool_children()}

    def settled(instance: ProcessInstance) -> bool:
        instance.refresh_from_db()
        return instance.status in ("completed", "incident")

    wait_until(lambda: settled(looping), timeout=60, what="the runaway script's incident")
    assert looping.status == "incident"
    assert looping.incident is not None
    assert looping.incident["element_id"] == "spin"
    assert "time limit" in looping.incident["error"]
    assert ServiceJob.objects.get(instance=looping).status == "succeeded"

    fine = start_instance(key="worker_ok", variables={"api": fake_api.base_url})
    wait_until(lambda: settled(fine), timeout=60, what="the next instance")
    assert fine.status == "completed"
    assert fine.variables["total"] == 3
    assert {p.pid for p in celery_workers.pool_children()} == pids  # no worker was lost


@pytest.mark.django_db
def test_deploy_rejects_invalid_python_but_not_rule_breaking_scripts():
    from processes.validation import DeploymentInvalid

    with pytest.raises(DeploymentInvalid, match="'return' outside function"):
        deploy_xml("bad_syntax", script_process("bad_syntax", "return 1"))
    # Breaking a sandbox rule is not a syntax error: the task fails when it runs (above).
    deploy_xml("rule_breaker", script_process("rule_breaker", "import os"))


def test_plain_expressions_skip_the_sandbox_and_nothing_else_does() -> None:
    from engine.bpmn.scripting import plain_expression

    for plain in (
        'decision == "approve"',
        "score >= 600 and not flagged",
        'result["body"]["score"]',
        'api + "/score"',
        "a if b else [1, 'x']",
    ):
        assert plain_expression(plain) is not None, plain
    for guarded in (
        "().__class__",
        "len(x)",
        "x * 10**9",
        "[i for i in x]",
        "_secret",
        'f"{x:>999999999}"',
        "x[1:]",
        "lambda: 0",
        "10**10**10",
        "[a, b]",
        "(a, [b])",
    ):
        assert plain_expression(guarded) is None, guarded


def test_plain_assignment_scripts_skip_the_sandbox_and_nothing_else_does() -> None:
    from engine.bpmn.scripting import plain_assignments

    assert [n for n, _ in plain_assignments('outcome = "approved"\nok = a and b') or []] == [
        "outcome",
        "ok",
    ]
    for guarded in (
        "import os",
        "x = len(y)",
        "_x = 1",
        "a, b = 1, 2",
        "x = y * 9",
        "x += 1",
        "while True: pass",
        "x = 1\nprint(x)",
        "",
    ):
        assert plain_assignments(guarded) is None, guarded


# --- nothing crosses from one instance's script to another's ---------------------------------


@pytest.mark.django_db
def test_random_state_is_new_for_every_script_run():
    import random

    seeded_value = random.Random(42).random()
    deploy_xml(
        "seeder", script_process("seeder", "import random\nrandom.seed(42)\nv = random.random()")
    )
    deploy_xml("reader", script_process("reader", "import random\nv = random.random()"))
    deploy_xml(
        "either",
        script_process(
            "either", "import random\nif seed:\n    random.seed(42)\nv = random.random()"
        ),
    )

    assert start_instance(key="seeder", variables={}).variables["v"] == seeded_value
    # Another definition, and another instance of the same definition (which reuses its
    # sandbox process): neither draws from the seeded generator.
    assert start_instance(key="reader", variables={}).variables["v"] != seeded_value
    assert start_instance(key="either", variables={"seed": True}).variables["v"] == seeded_value
    values = {
        start_instance(key="either", variables={"seed": False}).variables["v"] for _ in range(5)
    }
    assert seeded_value not in values and len(values) == 5


@pytest.mark.django_db
def test_a_script_cannot_change_a_module_another_definition_uses():
    deploy_xml(
        "vandal",
        script_process(
            "vandal", "import math\nimport string\nstring.Template.delimiter = '#'\nmath.pi = 3"
        ),
    )
    deploy_xml(
        "victim",
        script_process(
            "victim",
            "import math\nimport string\npi = math.pi\n"
            "text = string.Template('$x #x').substitute(x=1)\nfloor = math.floor(2.5)",
        ),
    )

    vandal = start_instance(key="vandal", variables={})
    vandal.refresh_from_db()
    assert vandal.status == "incident"
    assert vandal.incident is not None
    assert "cannot change a class" in vandal.incident["error"]

    victim = start_instance(key="victim", variables={})
    assert victim.status == "completed", victim.incident
    assert victim.variables == {"pi": 3.141592653589793, "text": "1 #x", "floor": 2}


# --- the plain-expression fast path ----------------------------------------------------------


@pytest.mark.django_db
def test_plain_expressions_see_the_same_names_as_sandboxed_ones(settings):
    settings.BATON_BASE_URL = "http://baton.example:8000"
    environment = build_script_engine().environment
    with script_context(user=None):
        assert environment.evaluate('baton_url + "/x"', {}) == "http://baton.example:8000/x"
        assert environment.evaluate('str(baton_url) + "/x"', {}) == ("http://baton.example:8000/x")
        context = {"n": 1}
        environment.execute('link = baton_url + "/tasks"', context)
        assert context["link"] == "http://baton.example:8000/tasks"
        # A helper only the sandbox has is looked up there, as in any other script.
        assert environment.evaluate("timedelta(days=1).days", {}) == 1
        assert environment.evaluate("math", {"math": 2}) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("terms", "says"),
    [
        (50, "would build a text of 10,250,000 characters"),
        (400, "nested too deeply to be compiled"),
    ],
)
def test_a_plain_condition_that_builds_too_much_fails_in_the_sandbox(approver, terms, says):
    """`(s + s + ... 400 terms) == ''` over a 250 KB variable: it is sent to the sandbox,
    where it is refused (its `+` counted, or its depth), not evaluated for a minute here."""
    condition = "(" + " + ".join(["s"] * terms) + ") == ''"
    deploy_xml("greedy", build_bpmn("greedy", condition=condition))
    instance = start_instance(key="greedy", variables={"s": "x" * 250_000})
    complete_human_task(task_id=instance.human_tasks.get().pk, user=approver)

    instance.refresh_from_db()
    assert instance.status == "incident"
    assert instance.incident is not None
    assert instance.incident["element_id"] == "decide"
    assert says in instance.incident["error"]


def test_a_small_plain_sum_stays_on_the_fast_path():
    from engine.bpmn.sandbox import leases
    from engine.bpmn.scripting import plain_expression

    leases.shutdown()
    environment = build_script_engine().environment
    assert plain_expression("a + b + c") is not None
    assert environment.evaluate("a + b + c", {"a": "x", "b": "y", "c": "z"}) == "xyz"
    assert leases._pool.zygote is None  # no sandbox was started for it


@pytest.mark.django_db
def test_values_a_script_leaves_survive_the_next_operation(approver):
    """What a script may leave is stored and loads again (bytes, dates, decimals, sets, number
    keys), and what the process data cannot keep is an incident, not an error on saving."""
    deploy_xml(
        "kinds",
        build_bpmn(
            "kinds",
            script=(
                "raw = b'abc'\nwhen = date(2024, 1, 2)\nprice = Decimal('1.10')\ntags = {'a'}\n"
                "by_number = {1: 'one'}"
            ),
        ),
    )
    instance = start_instance(key="kinds", variables={})
    assert instance.status == "waiting", instance.incident
    complete_human_task(task_id=instance.human_tasks.get().pk, user=approver)
    instance.refresh_from_db()
    assert instance.status == "completed"
    assert instance.variables["when"] == "2024-01-02"

    for script, says in (
        ("x = float('nan')", "cannot keep"),
        ("x = 10 ** 5000", "4,300"),
        ("x = {(1, 2): 3}", "dict key"),
    ):
        deploy_xml("unkeepable", script_process("unkeepable", script))
        failed = start_instance(key="unkeepable", variables={})
        failed.refresh_from_db()
        assert failed.incident is not None
        assert failed.status == "incident" and says in failed.incident["error"], script


def test_a_plain_script_keeps_no_helper_names():
    environment = build_script_engine().environment
    context = {"n": 1}
    with script_context(user=None):
        environment.execute("datetime = 5\nok = True", context)
        assert context == {"n": 1, "ok": True}
        environment.execute("later = timedelta(days=n).days", context)
    assert context["later"] == 1
