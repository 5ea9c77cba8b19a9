"""In Chromium: a diagram's XML never runs as a page of Baton (issue 14)."""

from pathlib import Path

import pytest

from tests.e2e.conftest import login
from tests.helpers import deploy_document
from tests.test_web_security import SCRIPTED

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_definition_xml_runs_no_script_in_the_browser(page, designer, with_password):
    deploy_document(SCRIPTED, "scripted.bpmn")
    login(page, with_password(designer))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    for url in ("/api/v1/definitions/scripted/xml/", "/processes/scripted/download/"):
        with page.expect_download() as download:
            try:
                page.goto(url)
            except Exception as exc:  # Chromium answers a download with an aborted navigation
                assert "Download is starting" in str(exc) or "net::ERR_ABORTED" in str(exc)  # noqa: PT017
        assert download.value.suggested_filename == "scripted.bpmn"
        assert b"<html:script>" in Path(download.value.path()).read_bytes()

    assert not [url for url in requested if "xss" in url]
