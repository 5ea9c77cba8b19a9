"""Process pages: the definitions a person can start, and their start forms."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from engine import selectors as engine_selectors
from engine.exceptions import EngineError, NotFound
from engine.services import start_instance
from tasks_ui.task_forms import build_form, submitted_variables

from . import selectors


@login_required
def definition_list(request: HttpRequest) -> HttpResponse:
    return render(request, "processes/list.html",
                  {"definitions": selectors.latest_definitions()})


@login_required
def start(request: HttpRequest, key: str) -> HttpResponse:
    try:
        definition = selectors.definition(key)
    except NotFound:
        raise Http404("No such process.") from None
    form = build_form(definition.start_form, {},
                      data=request.POST if request.method == "POST" else None)
    if request.method == "POST":
        variables = submitted_variables(definition.start_form, form)
        business_key = request.POST.get("business_key", "").strip()[:255] or None
        if variables is not None:
            try:
                instance = start_instance(key=key, variables=variables,
                                          business_key=business_key, actor=request.user)
            except EngineError as exc:
                messages.error(request, exc.detail)
            else:
                following = engine_selectors.next_task_in_instance(request.user, instance.id)
                if following is not None:
                    messages.success(request, f"{definition.name} started. Your first step:")
                    return redirect("tasks_ui:task", task_id=following.id)
                messages.success(request, f"{definition.name} started"
                                 f"{' as ' + business_key if business_key else ''}.")
                return redirect("processes:list")
    return render(request, "processes/start.html",
                  {"definition": definition, "form": form},
                  status=400 if request.method == "POST" else 200)
