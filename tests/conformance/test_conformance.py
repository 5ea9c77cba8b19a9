"""BPMN 2.0 conformance (issue 17): every case of `cases/` deployed, started and driven
through the engine's services against real Postgres; the instance's status, the elements
that ran (in order) and its data must be what the specification says."""

import pytest
from django.contrib.auth.models import User

from tests.conformance.cases import Case, all_cases
from tests.conformance.runner import run_case
from tests.conftest import MovableClock

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.case_id for case in CASES])
def test_conformance(case: Case, operator: User, clock: MovableClock) -> None:
    run_case(case, operator, clock)
