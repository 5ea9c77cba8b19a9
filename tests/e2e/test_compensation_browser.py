"""Compensation seen in the admin (issue 24): after the trip saga's payment is declined on real
workers, the instance page's diagram marks the three bookings as compensated, the legend says
what the colour means, and the audit trail says it in words.
BATON_SCREENSHOTS=docs/screenshots keeps the picture (docs/screenshots/compensation.png)."""

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from engine.services import start_instance
from tests.e2e.conftest import login
from tests.e2e.test_admin_polish_browser import LAPTOP, instance_page, screenshot_dir
from tests.engine.service_fixtures import celery_workers, wait_until

__all__ = ["celery_workers"]  # the fixture, for this module

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(make_staff, with_password):
    return with_password(make_staff("olga_operator", "operators"))


def test_compensated_bookings_are_marked_on_the_diagram(
    celery_workers: Any, example_definitions: Any, new_page: Any, operator: Any, tmp_path: Any
) -> None:
    instance = start_instance(
        key="trip_booking",
        business_key="TRIP-SHOT",
        variables={
            "trip_id": "TRIP-SHOT",
            "traveller": "Ada",
            "flight_price": 600,
            "hotel_price": 400,
            "car_price": 150,
            "fail_payment": True,
        },
    )

    def ended() -> bool:
        instance.refresh_from_db()
        return instance.is_finished or instance.status == "incident"

    wait_until(ended, timeout=90, what="the saga to end")
    assert instance.status == "completed"
    page = new_page(viewport=LAPTOP)
    login(page, operator)
    page.goto(instance_page(instance))
    expect(page.locator("#baton-diagram")).to_have_attribute("data-ready", "true")
    for booking in ("book_flight", "book_hotel", "book_car"):
        shape = page.locator(f'g.djs-element[data-element-id="{booking}"]')
        expect(shape).to_have_class(re.compile(r"\bbaton-compensated\b"))
    expect(page.locator(".baton-compensated-badge")).to_have_count(3)
    expect(page.get_by_test_id("legend-compensated")).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_contain_text("ompensat")
    # The diagram with its legend (docs/screenshots/compensation.png for the README).
    diagram = page.locator("section.module").filter(has=page.locator("#baton-diagram"))
    diagram.screenshot(path=str(screenshot_dir(tmp_path) / "compensation.png"))
