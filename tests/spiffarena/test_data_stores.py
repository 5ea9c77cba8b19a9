"""SpiffArena's data stores (engine.bpmn.data_stores), kept in Postgres
(engine.services.data_stores): shared by instances, read and written by the tasks with a data
association to them."""

from html import escape

import pytest

from engine.models import DataStoreEntry, InstanceEvent
from engine.selectors.data_stores import typeahead_search
from engine.services import start_instance
from processes.validation import DeploymentInvalid
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def store_diagram(
    process_id: str,
    store: str,
    kind: str,
    script: str,
    *,
    reads: bool = False,
    writes: bool = False,
    user_task: bool = False,
) -> str:
    """start -> script `work` (with data associations to `store`) [-> user task `look`] -> end."""
    inputs = (
        # As bpmn.io writes it: the schema wants a target, a placeholder property.
        '<bpmn:property id="placeholder" name="__targetRef_placeholder"/>'
        '<bpmn:dataInputAssociation id="in"><bpmn:sourceRef>ref</bpmn:sourceRef>'
        "<bpmn:targetRef>placeholder</bpmn:targetRef></bpmn:dataInputAssociation>"
        if reads
        else ""
    )
    outputs = (
        '<bpmn:dataOutputAssociation id="out"><bpmn:targetRef>ref</bpmn:targetRef>'
        "</bpmn:dataOutputAssociation>"
        if writes
        else ""
    )
    last = "look" if user_task else "end"
    look = (
        '<bpmn:userTask id="look"/><bpmn:sequenceFlow id="f3" sourceRef="look" targetRef="end"/>'
        if user_task
        else ""
    )
    return (
        HEADER
        + f'<bpmn:dataStore id="{store}" name="{kind}"/>\n'
        + f'<bpmn:process id="{process_id}" isExecutable="true">\n'
        + '<bpmn:startEvent id="start"/>\n'
        + f'<bpmn:scriptTask id="work" scriptFormat="python">{inputs}{outputs}'
        + f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>\n"
        + f'<bpmn:dataStoreReference id="ref" dataStoreRef="{store}"/>\n'
        + f'{look}<bpmn:endEvent id="end"/>\n'
        + '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>\n'
        + f'<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="{last}"/>\n'
        + "</bpmn:process>\n</bpmn:definitions>\n"
    )


def test_a_json_store_written_by_one_instance_is_read_by_another() -> None:
    deploy_document(
        store_diagram("writer", "settings", "JSONDataStore", 'settings = {"rate": 3}', writes=True),
        "writer.bpmn",
    )
    deploy_document(
        store_diagram(
            "reader", "settings", "JSONDataStore", 'rate = settings["rate"] * 2', reads=True
        ),
        "reader.bpmn",
    )
    writer = start_instance(key="writer")
    assert writer.status == "completed", writer.incident
    assert "settings" not in writer.variables  # written, then gone from the task data
    reader = start_instance(key="reader")
    assert reader.status == "completed", reader.incident
    assert reader.variables["rate"] == 6
    assert DataStoreEntry.objects.get(kind="json", store="settings").value == {"rate": 3}
    assert writer.events.filter(type=InstanceEvent.Type.DATA_STORE_WRITTEN).count() == 1


def test_a_json_store_never_written_reads_as_an_empty_dict() -> None:
    deploy_document(
        store_diagram("fresh", "nothing", "JSONDataStore", "size = len(nothing)", reads=True)
    )
    instance = start_instance(key="fresh")
    assert (instance.status, instance.variables["size"]) == ("completed", 0), instance.incident


KKV_WRITE = 'movies = {"sci-fi": {"Alien": {"year": 1979}, "Dune": {"year": 2021}}}'
KKV_READ = """
alien = movies("sci-fi", "Alien")
dune_year = movies("sci-fi", "Dune")["year"]
missing = movies("sci-fi", "Heat")
genre = sorted(movies("sci-fi"))
"""


def test_a_kkv_store_is_set_and_got_by_two_keys() -> None:
    deploy_document(
        store_diagram("kkv_writer", "movies", "KKVDataStore", KKV_WRITE, writes=True), "w.bpmn"
    )
    deploy_document(
        store_diagram("kkv_reader", "movies", "KKVDataStore", KKV_READ, reads=True), "r.bpmn"
    )
    assert start_instance(key="kkv_writer").status == "completed"
    reader = start_instance(key="kkv_reader")
    assert reader.status == "completed", reader.incident
    assert reader.variables["alien"] == {"year": 1979}
    assert reader.variables["dune_year"] == 2021
    assert reader.variables["missing"] is None
    assert reader.variables["genre"] == ["Alien", "Dune"]
    assert "movies" not in reader.variables  # the reader is a function: never kept


def test_a_kkv_value_none_deletes_the_entry() -> None:
    deploy_document(
        store_diagram("kkv_writer", "movies", "KKVDataStore", KKV_WRITE, writes=True), "w.bpmn"
    )
    remove = 'movies = {"sci-fi": {"Alien": None}}'
    deploy_document(
        store_diagram("kkv_remove", "movies", "KKVDataStore", remove, writes=True), "d.bpmn"
    )
    start_instance(key="kkv_writer")
    assert start_instance(key="kkv_remove").status == "completed"
    keys = DataStoreEntry.objects.filter(kind="kkv", store="movies").values_list(
        "key", "secondary_key"
    )
    assert list(keys) == [("sci-fi", "Dune")]


def test_a_kkv_store_read_by_a_waiting_user_task_survives_save_and_load() -> None:
    from django.contrib.auth.models import User

    from engine.models import HumanTask
    from engine.services import complete_human_task

    deploy_document(
        store_diagram("kkv_writer", "movies", "KKVDataStore", KKV_WRITE, writes=True), "w.bpmn"
    )
    start_instance(key="kkv_writer")
    # The script reads, then writes the same store; a user task then waits (state saved).
    both = 'year = movies("sci-fi", "Dune")["year"]\nmovies = {"drama": {"Heat": {"year": 1995}}}'
    document = store_diagram(
        "kkv_both", "movies", "KKVDataStore", both, reads=True, writes=True, user_task=True
    )
    deploy_document(document, "b.bpmn")
    instance = start_instance(key="kkv_both")
    assert instance.status == "waiting", instance.incident
    assert instance.variables["year"] == 2021
    task = HumanTask.objects.get(instance=instance, element_id="look")
    admin = User.objects.create_superuser("admin")
    complete_human_task(task_id=task.pk, user=admin)
    instance.refresh_from_db()
    assert instance.status == "completed", instance.incident
    assert DataStoreEntry.objects.get(kind="kkv", store="movies", key="drama").value == {
        "year": 1995
    }


TYPEAHEAD = """
cities = {"cities": [
    {"search_term": "Berlin", "result": {"country": "DE"}},
    {"search_term": "Bern", "result": {"country": "CH"}},
    {"search_term": "Paris", "result": {"country": "FR"}},
]}
"""


def test_a_typeahead_store_is_written_and_looked_up_by_prefix() -> None:
    deploy_document(
        store_diagram("typeahead", "cities", "TypeaheadDataStore", TYPEAHEAD, writes=True)
    )
    instance = start_instance(key="typeahead")
    assert instance.status == "completed", instance.incident
    assert typeahead_search("cities", "Ber") == [
        {"country": "DE", "search_term": "Berlin"},
        {"country": "CH", "search_term": "Bern"},
    ]
    assert typeahead_search("cities", "X") == []


def test_reading_a_typeahead_store_is_an_incident_that_says_why() -> None:
    deploy_document(
        store_diagram("typeahead_read", "cities", "TypeaheadDataStore", "x = 1", reads=True)
    )
    instance = start_instance(key="typeahead_read")
    assert instance.status == "incident"
    assert "write only" in str(instance.incident)


def test_writing_a_kkv_store_with_no_dict_is_an_incident() -> None:
    deploy_document(store_diagram("bad", "movies", "KKVDataStore", "movies = 3", writes=True))
    instance = start_instance(key="bad")
    assert instance.status == "incident"
    assert "takes a dict of dicts" in str(instance.incident)


def test_a_store_of_an_unknown_kind_is_refused_at_deploy() -> None:
    document = store_diagram("odd", "things", "S3DataStore", "things = 1", writes=True)
    with pytest.raises(DeploymentInvalid) as refused:
        deploy_document(document)
    assert "of no kind Baton keeps" in str(refused.value)
    assert "work" in str(refused.value)


def test_a_spiffworkflow_type_attribute_names_the_kind_too() -> None:
    document = store_diagram(
        "typed", "settings", "Settings", 'settings = {"a": 1}', writes=True
    ).replace('name="Settings"', 'name="Settings" spiffworkflow:type="json"')
    deploy_document(document)
    assert start_instance(key="typed").status == "completed"
    assert DataStoreEntry.objects.get(kind="json", store="settings").value == {"a": 1}
