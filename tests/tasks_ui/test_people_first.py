"""Issue 18 (part A) through Django's test client: the task page shows the work it is about,
starters follow their instances on /instances/, tasks of suspended instances offer no form,
and the inbox's search, row swap and header links."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from engine import selectors
from engine.models import HumanTask, ProcessInstance
from engine.services import start_instance, suspend_instance
from processes.models import ProcessDefinition
from tests.helpers import build_bpmn, deploy_document

pytestmark = pytest.mark.django_db

EXPENSE = {"amount": 1234, "description": "Train <b>tickets</b>", "requester": "rita"}


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _variables_shown(page: str) -> dict[str, str]:
    """label -> text of the task data panel's plain (unfolded) entries."""
    found = re.findall(r"<dt>([^<]*)</dt>\s*<dd>([^<]*)</dd>", page)
    return {label: text for label, text in found}


@pytest.fixture
def requester(make_user) -> User:
    return make_user("bob_requester")


@pytest.fixture
def expense_task(expense_definition, requester) -> HumanTask:
    instance = start_instance(
        key="expense_approval", variables=dict(EXPENSE), business_key="E-9", actor=requester
    )
    return instance.human_tasks.get()


# --- the task page shows the work ----------------------------------------------------------


def test_show_variables_is_read_once_at_deploy(expense_definition):
    elements = ProcessDefinition.objects.get(pk=expense_definition.pk).elements
    assert elements["approve_expense"]["show_variables"] == [
        "amount",
        "description",
        "requester",
        "category",
    ]


def test_spiffarena_properties_name_the_variables_too(db):
    document = build_bpmn("spiffy").replace(
        "<bpmn:extensionElements>",
        '<bpmn:extensionElements xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core">'
        "<spiffworkflow:properties>"
        '<spiffworkflow:property name="show_variables" value="b, a" />'
        "</spiffworkflow:properties>",
    )
    deploy_document(document)
    definition = ProcessDefinition.objects.get(key="spiffy")
    assert definition.elements["review"]["show_variables"] == ["b", "a"]


def test_the_approver_sees_amount_description_and_requester(expense_task, approver):
    page = login(approver).get(f"/tasks/{expense_task.id}/").content.decode()
    shown = _variables_shown(page)
    assert shown["Amount"] == "1,234"
    assert shown["Description"] == "Train &lt;b&gt;tickets&lt;/b&gt;"  # escaped, as typed
    assert shown["Requester"] == "rita"
    assert shown["Category"] == "large"
    assert "<b>tickets</b>" not in page.split('id="work-diagram-data"')[0]
    # ...and the diagram, with this task to highlight.
    assert '"current": ["approve_expense"]' in page
    assert 'id="work-diagram"' in page and "bpmn-navigated-viewer" in page


def test_without_the_property_read_only_fields_then_a_summary(db, approver):
    document = build_bpmn("plain").replace(
        '<camunda:formField id="note" label="Note" type="string" />',
        '<camunda:formField id="note" label="Note" type="string" />'
        '<camunda:formField id="customer" label="Customer name" type="string">'
        '<camunda:validation><camunda:constraint name="readonly" /></camunda:validation>'
        "</camunda:formField>",
    )
    deploy_document(document)
    long_text = "word " * 60
    task = start_instance(
        key="plain",
        variables={
            "customer": "ACME",
            "note": "typed before",
            "order_total": 12.5,
            "shipDate": "2024-05-01",
            "urgent": True,
            "tags": ["a", "b"],
            "_internal": "hidden",
            "letter": long_text,
            "address": {"city": "Oslo"},
        },
    ).human_tasks.get()
    page = login(approver).get(f"/tasks/{task.id}/").content.decode()
    shown = _variables_shown(page)
    labels = re.findall(r"<dt>([^<]*)</dt>", page)
    assert labels[0] == "Customer name"  # the read-only field first, with the form's label
    assert shown["Customer name"] == "ACME"
    assert shown["Order total"] == "12.5"
    assert shown["Ship date"] == "2024-05-01"
    assert shown["Urgent"] == "Yes"
    assert shown["Tags"] == "a, b"
    assert "Note" not in shown and "_internal" not in page  # in the form / internal
    assert 'name="customer"' not in page  # shown as data, not as a disabled input
    # Long and nested values are folded.
    assert re.search(r'data-variable="letter">\s*<dt>Letter</dt>\s*<dd><details>', page)
    assert re.search(r'data-variable="address">\s*<dt>Address</dt>\s*<dd><details>', page)


def test_a_candidate_sees_the_data_but_cannot_follow_the_instance(expense_task, approver):
    client = login(approver)
    assert client.get(f"/tasks/{expense_task.id}/").status_code == 200
    assert client.get(f"/instances/{expense_task.instance_id}/").status_code == 403
    assert "Follow this instance" not in client.get(f"/tasks/{expense_task.id}/").content.decode()


# --- my work ---------------------------------------------------------------------------------


def test_my_work_lists_what_i_started_with_its_step_by_name(
    expense_task, requester, approver, make_user
):
    start_instance(key="expense_approval", variables=dict(EXPENSE), actor=make_user("other"))
    listed = list(selectors.started_instances(requester))
    assert [i.pk for i in listed] == [expense_task.instance_id]
    assert [s.name for s in selectors.current_steps(listed[0])] == ["Approve expense"]
    page = login(requester).get("/instances/").content.decode()
    assert "E-9" in page and "Approve expense" in page and "Waiting" in page
    assert f"/instances/{expense_task.instance_id}/" in page
    assert selectors.started_instances(approver).count() == 0


def test_the_starter_and_operators_follow_an_instance(expense_task, requester, make_user):
    page = login(requester).get(f"/instances/{expense_task.instance_id}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Approve expense" in text and "Train &lt;b&gt;tickets&lt;/b&gt;" in text
    assert '"active": ["approve_expense"]' in text  # the diagram's markers
    operator = make_user("olga_operator", "operators")
    assert login(operator).get(f"/instances/{expense_task.instance_id}/").status_code == 200
    assert (
        login(make_user("nosy")).get(f"/instances/{expense_task.instance_id}/").status_code == 403
    )


@pytest.mark.slow
def test_a_start_lands_on_the_instance_page(expense_definition, requester):
    response = login(requester).post(
        "/processes/expense_approval/start/",
        {"business_key": "E-1", "amount": "20", "description": "Pens", "requester": "bob"},
    )
    instance = ProcessInstance.objects.get(business_key="E-1")
    assert response.status_code == 302 and response["Location"] == f"/instances/{instance.pk}/"


@pytest.mark.slow
def test_a_start_that_fails_at_once_lands_on_the_page_that_says_so(db, requester):
    deploy_document(build_bpmn("broken", name="Broken", script="x = 1 / 0"))
    client = login(requester)
    response = client.post("/processes/broken/start/", {"business_key": "B-1"})
    instance = ProcessInstance.objects.get(business_key="B-1")
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert response["Location"] == f"/instances/{instance.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "stopped with an incident at “Prepare”" in page
    assert "ZeroDivisionError" in page or "division" in page
    listing = client.get("/instances/?show=incident").content.decode()
    assert "Broken" in listing and "Prepare" in listing and "division" in listing


# --- suspended instances ---------------------------------------------------------------------


def test_a_suspended_instance_task_offers_no_form(expense_task, approver, make_user):
    suspend_instance(instance_id=expense_task.instance_id, actor=make_user("op", "operators"))
    client = login(approver)
    page = client.get(f"/tasks/{expense_task.id}/").content.decode()
    assert "This process is <strong>suspended</strong>" in page
    assert 'name="decision"' not in page and ">Claim<" not in page
    inbox = client.get("/tasks/?tab=groups").content.decode()
    assert "Process suspended" in inbox and "Claim" not in inbox.split("<tbody>")[1]


# --- inbox -----------------------------------------------------------------------------------


def test_inbox_search_finds_the_starter_and_text_values(expense_task, approver):
    client = login(approver)

    def found(q: str) -> bool:
        return "E-9" in client.get("/tasks/", {"tab": "groups", "q": q}).content.decode()

    assert found("bob")  # the starter's user name
    assert found("tickets")  # a text variable
    assert found("RITA")
    assert not found("amount")  # a variable's name is no text value
    assert not found("1234")  # nor is a number
    assert not found("%")


def test_a_claimed_row_leaves_my_groups_at_once(expense_task, approver):
    response = login(approver).post(
        f"/tasks/{expense_task.id}/claim/",
        {"tab": "groups", "next": "/tasks/?tab=groups"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200 and "<tr" not in body
    assert 'hx-swap-oob="true"' in body and "Assigned to me" in body
    expense_task.refresh_from_db()
    assert expense_task.assignee == approver.username


def test_the_admin_link_only_for_who_the_admin_shows_something(make_staff, make_user):
    designer = make_staff("dee", "designers")
    operator = make_staff("opal", "operators")
    operator.user_permissions.add(Permission.objects.get(codename="view_processinstance"))
    assert 'href="/admin/"' not in login(designer).get("/tasks/").content.decode()
    assert 'href="/admin/"' in login(operator).get("/tasks/").content.decode()


def test_who_follows_an_instance_is_one_rule(expense_task, requester, approver, make_user):
    from engine.permissions import followable_instances_q, started_instances_q

    instance = ProcessInstance.objects.get(pk=expense_task.instance_id)
    superuser = User.objects.create_superuser("root", password="not-used-here")
    inactive = make_user("gone")
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])

    def follows(user: User) -> bool:
        return ProcessInstance.objects.filter(followable_instances_q(user), pk=instance.pk).exists()

    assert follows(requester) and follows(superuser)
    assert not follows(approver)  # a candidate: the task page, not the instance page
    assert not follows(inactive)
    assert not ProcessInstance.objects.filter(started_instances_q(superuser)).exists()
