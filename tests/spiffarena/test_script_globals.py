"""SpiffArena's script globals `time` and `uuid` (and `import time` / `import uuid`): safe
stand-ins, never the real modules (their escapes are in tests/engine/sandbox_escapes.py)."""

import uuid

import pytest

from engine.services import start_instance
from tests.engine.service_diagrams import sequence
from tests.engine.test_sandbox_escapes import script_task
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db

SCRIPT = """
time.sleep(2)
started = time.time()
stamp = time.strftime("%Y", time.gmtime(0))
ident = str(uuid.uuid4())
import uuid as u2
from time import monotonic
fixed = str(u2.uuid5(u2.NAMESPACE_DNS, "example.org"))
ticks = monotonic() >= 0
"""


def test_time_and_uuid_without_import_and_imported() -> None:
    deploy_document(sequence("globals", [script_task(SCRIPT)]))
    instance = start_instance(key="globals")
    assert instance.status == "completed", instance.incident
    variables = instance.variables
    assert variables["stamp"] == "1970"
    assert isinstance(variables["started"], float)
    assert uuid.UUID(variables["ident"]).version == 4
    assert variables["fixed"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "example.org"))
    assert variables["ticks"] is True
    assert "time" not in variables and "uuid" not in variables


def test_a_variable_named_time_still_reads_as_the_data() -> None:
    deploy_document(sequence("shadow", [script_task("later = time + 1")]))
    instance = start_instance(key="shadow", variables={"time": 5})
    assert (instance.status, instance.variables["later"]) == ("completed", 6), instance.incident
