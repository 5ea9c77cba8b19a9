"""The example diagrams of processes/bpmn/, tested with Baton's pytest plugin (the `baton`
fixture, baton.testing) as a team would test its own: every path of expense_approval,
credit_check with its 404 boundary event and its retries, both branches of parallel_review,
and a timer escalation with the clock moved instead of waited for."""

import pytest

from baton.testing.mocks import NotMocked
from baton.testing.runner import ProcessTester
from tests.engine.event_diagrams import approval_with_escalation
from tests.helpers import EXAMPLES_DIR

pytestmark = pytest.mark.django_db

EXPENSE = EXAMPLES_DIR / "expense_approval.bpmn"
CREDIT = EXAMPLES_DIR / "credit_check.bpmn"
PARALLEL = EXAMPLES_DIR / "parallel_review.bpmn"


@pytest.fixture
def expenses(baton: ProcessTester) -> ProcessTester:
    assert baton.load(EXPENSE) == ["expense_approval"]
    return baton


@pytest.mark.parametrize(("amount", "category"), [(50, "small"), (500, "medium"), (5000, "large")])
def test_an_expense_is_categorised_and_waits_for_approval(expenses, amount, category):
    run = expenses.start("expense_approval", {"amount": amount, "description": "Taxi"})
    assert run.waiting_at("approve_expense")
    assert run.passed("expense_submitted", "categorise", "approve_expense")
    assert run.variables["category"] == category
    assert run.status == "waiting"


def test_an_approved_expense_is_recorded_as_approved(expenses):
    run = expenses.start("expense_approval", {"amount": 80, "description": "Lunch"})
    run.complete("approve_expense", {"decision": "approve", "comment": "fine"})
    assert run.passed("approve_expense", "approved_gateway", "record_approval")
    assert not run.passed("record_rejection")
    assert run.ended_at("expense_approved")
    assert run.variables["outcome"] == "approved"
    assert run.flows >= {"flow_approved", "flow_approval_to_end"}
    assert "flow_rejected" not in run.flows


def test_a_rejected_expense_is_recorded_as_rejected(expenses):
    run = expenses.start("expense_approval", {"amount": 2000, "description": "Flight"})
    run.complete("approve_expense", {"decision": "reject"})
    assert run.passed("approved_gateway", "record_rejection")
    assert run.ended_at("expense_rejected")
    assert not run.ended_at("expense_approved")
    assert (run.variables["outcome"], run.variables["category"]) == ("rejected", "large")
    assert "flow_rejected" in run.flows and "flow_approved" not in run.flows


def test_a_path_assertion_that_fails_says_which_path_was_taken(expenses):
    run = expenses.start("expense_approval", {"amount": 10, "description": "Pen"})
    check = run.passed("record_approval")
    assert not check
    assert "approve_expense" in repr(check)
    with pytest.raises(AssertionError, match="No open task 'record_approval'"):
        run.complete("record_approval")


@pytest.fixture
def credit(baton: ProcessTester) -> ProcessTester:
    baton.load(CREDIT)
    return baton


def test_a_good_score_goes_to_approval_and_is_granted(credit):
    credit.mock("http", {"status": 200, "headers": {}, "body": {"score": 720}})
    run = credit.start("credit_check", {"customer_id": "c-1", "amount": 1000})
    assert run.waiting_at("approve_credit")
    assert run.variables["score"] == 720
    run.complete("approve_credit", {"decision": "approve"})
    assert run.passed("check_credit_score", "score_ok", "approve_credit", "record_approval")
    assert run.ended_at("credit_granted")
    assert run.variables["outcome"] == "approved"
    # The mock was called with the parameters the diagram evaluated.
    [(element, connector, params)] = credit.mocks.calls
    assert (element, connector, params["method"]) == ("check_credit_score", "http", "GET")
    assert params["url"].endswith("/demo-api/credit-score/c-1/")


def test_an_approver_can_still_reject_a_good_score(credit):
    credit.mock("check_credit_score", {"status": 200, "headers": {}, "body": {"score": 650}})
    run = credit.start("credit_check", {"customer_id": "c-2", "amount": 10})
    run.complete("approve_credit", {"decision": "reject", "comment": "no"})
    assert run.ended_at("credit_rejected")
    assert run.variables["outcome"] == "rejected"


def test_a_low_score_is_declined_without_a_person(credit):
    credit.mock("http", {"status": 200, "headers": {}, "body": {"score": 420}})
    run = credit.start("credit_check", {"customer_id": "c-3", "amount": 10})
    assert run.passed("check_credit_score", "score_ok", "decline_credit")
    assert run.ended_at("credit_declined")
    assert run.variables["outcome"] == "declined"


def test_an_unknown_customer_goes_through_the_404_boundary_to_a_manual_check(credit):
    credit.mock("http", error="HTTP_404", message="Not Found")
    run = credit.start("credit_check", {"customer_id": "nobody", "amount": 10})
    assert run.passed("check_credit_score", "customer_unknown", "check_customer_data")
    assert run.waiting_at("check_customer_data")
    assert not run.passed("score_ok")
    run.complete("check_customer_data", {"note": "no such customer"})
    assert run.ended_at("credit_refused_unknown")
    assert "flow_unknown_to_check_data" in run.flows
    assert "flow_check_to_gateway" not in run.flows


def test_a_transient_failure_is_retried_when_the_clock_moves(credit):
    credit.mock("http", transient="connection refused")
    credit.mock("http", {"status": 200, "headers": {}, "body": {"score": 700}})
    run = credit.start("credit_check", {"customer_id": "c-4", "amount": 10})
    [job] = run.jobs("check_credit_score")
    assert (job.status, job.attempt) == ("pending", 1)
    assert "connection refused" in job.last_error
    assert run.waiting_at("check_credit_score")

    credit.advance(seconds=5)  # R3/PT5S: the retry is due five seconds later

    [job] = run.jobs("check_credit_score")
    assert (job.status, job.attempt) == ("succeeded", 2)
    assert run.waiting_at("approve_credit")


def test_retries_that_run_out_leave_an_incident(credit):
    credit.mock("http", transient="503 Service Unavailable")
    run = credit.start("credit_check", {"customer_id": "c-5", "amount": 10})
    credit.advance(seconds=5)
    credit.advance(seconds=5)
    assert run.status == "incident"
    [job] = run.jobs()
    assert (job.status, job.attempt) == ("dead", 3)


def test_an_unmocked_connector_fails_the_test_clearly(credit):
    with pytest.raises(NotMocked, match=r"connector http is not mocked .*run\.mock\('http'"):
        credit.start("credit_check", {"customer_id": "c-6", "amount": 10})


@pytest.mark.parametrize(("legal_ok", "finance_ok"), [(True, True), (True, False)])
def test_both_reviews_run_in_parallel_and_are_summarised(baton, legal_ok, finance_ok):
    baton.load(PARALLEL)
    run = baton.start("parallel_review", {"document": "contract.pdf"})
    assert run.waiting_at("legal_review") and run.waiting_at("finance_review")
    run.complete("finance_review", {"finance_ok": finance_ok})
    assert run.waiting_at("legal_review") and not run.waiting_at("join_reviews")
    run.complete("legal_review", {"legal_ok": legal_ok, "legal_notes": "ok"})
    assert run.passed("fork_reviews", "join_reviews", "summarise")
    assert run.ended_at("review_completed")
    assert run.variables["approved"] is (legal_ok and finance_ok)
    assert run.flows >= {"flow_legal_to_join", "flow_finance_to_join", "flow_join_to_summarise"}


def test_an_approval_nobody_does_escalates_when_the_clock_passes_the_deadline(baton):
    baton.load_xml(approval_with_escalation("PT2H"), "escalation.bpmn")
    run = baton.start("escalating_approval")
    baton.advance(hours=1)
    assert run.waiting_at("approve") and not run.passed("overdue")

    baton.advance(hours=1, minutes=1)

    assert run.passed("approve", "overdue", "escalate")
    assert run.waiting_at("escalate") and not run.waiting_at("approve")
    run.complete("escalate")
    assert run.ended_at("end_escalated")


def test_an_approval_in_time_does_not_escalate(baton):
    baton.load_xml(approval_with_escalation("PT2H"), "escalation.bpmn")
    run = baton.start("escalating_approval")
    run.complete("approve")
    baton.advance(hours=3)
    assert run.ended_at("end") and not run.passed("overdue")
