"""The session backend that reads a user with their group names (engine.auth_backend): a
session still ends when its user is deactivated or changes their password, and the groups
it read are the user's."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.permissions import group_names

pytestmark = pytest.mark.django_db


def _session(user: User) -> Client:
    client = Client()
    client.force_login(user)  # the settings' backends: the session names the one that logged in
    return client


def _signed_in(client: Client) -> bool:
    response = client.get("/tasks/")
    return response.status_code == 200


def test_a_session_reads_its_user_with_their_groups(make_user) -> None:
    user = make_user("gwen", "designers", "operators")
    client = _session(user)
    assert client.session["_auth_user_backend"] == "engine.auth_backend.ModelBackendWithGroups"
    response = client.get("/tasks/")
    assert response.status_code == 200
    assert group_names(response.wsgi_request.user) == {"designers", "operators"}


def test_a_deactivated_user_is_signed_out(make_user) -> None:
    user = make_user("ida")
    client = _session(user)
    assert _signed_in(client)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert not _signed_in(client)
    assert client.get("/tasks/")["Location"].startswith("/accounts/login/")


def test_a_password_change_ends_other_sessions(make_user) -> None:
    user = make_user("pat")
    client = _session(user)
    assert _signed_in(client)
    user.set_password("another-secret-1")
    user.save()
    assert not _signed_in(client)
