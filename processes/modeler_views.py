"""The modeler pages (bpmn-js in the browser) and the save endpoint they post to.

Saving deploys a new version through `processes.services.deploy`, which checks that the
person may deploy; the pages themselves are shown to designers only.
"""

import json
import re
import secrets
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from api.errors import problem_response
from engine.connectors import connector_choices
from engine.exceptions import NotFound
from engine.selectors.connections import connection_choices

from . import selectors
from .content_policies import inline_styles
from .models import ProcessDefinition
from .permissions import can_deploy
from .services import DeploymentResult, deploy
from .validation import DeploymentInvalid, UploadedFile

SAFE_FILE_NAME = re.compile(r"^[\w.-]{1,200}\.bpmn$")
DEFAULT_FILE_NAME = "diagram.bpmn"


def _require_designer(request: HttpRequest) -> None:
    if not can_deploy(request.user):
        raise PermissionDenied(
            "Only members of the designers group may model and deploy processes."
        )


def blank_diagram() -> tuple[str, str]:
    """A new diagram holding one executable process with a start event: (process id, XML)."""
    process_id = f"Process_{secrets.token_hex(4)}"
    xml = render_to_string("processes/blank.bpmn", {"process_id": process_id})
    return process_id, xml


def _modeler_page(
    request: HttpRequest, *, xml: str, file_name: str, definition: ProcessDefinition | None
) -> HttpResponse:
    config = {
        "xml": xml,
        "fileName": file_name,
        "saveUrl": reverse("processes:save"),
        "connectors": connector_choices(),
        "connections": connection_choices(),
        "isNew": definition is None,
    }
    return render(
        request, "processes/modeler.html", {"definition": definition, "modeler_config": config}
    )


@login_required
@inline_styles
def new(request: HttpRequest) -> HttpResponse:
    _require_designer(request)
    process_id, xml = blank_diagram()
    return _modeler_page(request, xml=xml, file_name=f"{process_id}.bpmn", definition=None)


@login_required
@inline_styles
def edit(request: HttpRequest, key: str) -> HttpResponse:
    _require_designer(request)
    try:
        definition = selectors.definition(key)
    except NotFound:
        raise Http404("No such process.") from None
    file_name = (
        definition.file_name
        if SAFE_FILE_NAME.match(definition.file_name)
        else (f"{key}.bpmn" if SAFE_FILE_NAME.match(f"{key}.bpmn") else DEFAULT_FILE_NAME)
    )
    return _modeler_page(
        request, xml=definition.bpmn_xml, file_name=file_name, definition=definition
    )


def _read_body(request: HttpRequest) -> tuple[str, str] | JsonResponse:
    """The diagram and its file name from the JSON body, or the 400 answer."""
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        return problem_response(400, "Invalid input", "The diagram is too large to be deployed.")
    except ValueError:
        return problem_response(400, "Invalid input", "The request body is not JSON.")
    xml = body.get("xml") if isinstance(body, dict) else None
    if not isinstance(xml, str) or not xml.strip():
        return problem_response(
            400,
            "Invalid input",
            "The request body is not valid.",
            [{"field": "xml", "message": "Send the diagram as a string."}],
        )
    file_name = body.get("file_name")
    if not isinstance(file_name, str) or not SAFE_FILE_NAME.match(file_name):
        file_name = DEFAULT_FILE_NAME
    return xml, file_name


def _saved_body(result: DeploymentResult) -> dict[str, Any]:
    definitions = [
        {
            "key": d.key,
            "version": d.version,
            "name": d.name or d.key,
            "created": d in result.created,
            "url": reverse("processes:detail", args=[d.key]),
            "edit_url": reverse("processes:edit", args=[d.key]),
            "start_url": reverse("processes:start", args=[d.key]),
        }
        for d in result.definitions
    ]
    if result.created:
        message = " ".join(
            f"Version {d['version']} of “{d['name']}” deployed."
            for d in definitions
            if d["created"]
        )
    else:
        message = "Nothing changed: " + " ".join(
            f"version {d['version']} of “{d['name']}” is current." for d in definitions
        )
    if result.warnings:
        message += " Deployed despite: " + "; ".join(w.describe() for w in result.warnings)
    return {
        "created": bool(result.created),
        "message": message,
        "definitions": definitions,
        "warnings": [w.as_dict() for w in result.warnings],
    }


@require_POST
def save(request: HttpRequest) -> JsonResponse:
    """Validate and deploy the posted diagram: 201 new version, 200 unchanged, 400 with
    `errors: [{file, line, element_id, message}]`, 401/403 when not allowed."""
    if not request.user.is_authenticated:
        return problem_response(401, "Not signed in", "Sign in to save a diagram.")
    read = _read_body(request)
    if isinstance(read, JsonResponse):
        return read
    xml, file_name = read
    try:
        content = xml.encode("utf-8")
    except UnicodeEncodeError:
        return problem_response(
            400, "Invalid input", "The diagram holds characters that are not valid Unicode."
        )
    try:
        result = deploy(name="", files=[UploadedFile(file_name, content)], actor=request.user)
    except PermissionDenied as exc:
        return problem_response(403, "Not allowed", str(exc))
    except DeploymentInvalid as exc:
        return problem_response(
            400, "The diagram cannot be deployed", str(exc), [p.as_dict() for p in exc.problems]
        )
    return JsonResponse(_saved_body(result), status=201 if result.created else 200)
