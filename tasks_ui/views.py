"""The web inbox. This first version lists the tasks a person can act on."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from engine.selectors import tasks_for_user


def home(request: HttpRequest) -> HttpResponse:
    return redirect("tasks_ui:inbox")


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    tasks = tasks_for_user(request.user)[:200]
    return render(request, "tasks_ui/inbox.html", {"tasks": tasks})
