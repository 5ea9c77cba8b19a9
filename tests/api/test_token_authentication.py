"""The API's token authentication (api.authentication) reads the token, its user and the
user's groups in one hand-written statement: it must find what the ORM finds, and refuse what
DRF's own token authentication refuses."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from api.authentication import token_with_user
from engine.permissions import group_names

pytestmark = pytest.mark.django_db


def test_the_token_brings_its_user_as_the_orm_reads_it_and_their_groups(make_user) -> None:
    user = make_user("gina", "managers", "legal")
    User.objects.filter(pk=user.pk).update(first_name="Gina", email="gina@example.org")
    key = Token.objects.create(user=user).key

    with CaptureQueriesContext(connection) as read:
        token = token_with_user(key)
        names = group_names(token.user) if token else set()

    assert token is not None and len(read.captured_queries) == 1
    stored = Token.objects.select_related("user").get(key=key)
    assert (token.key, token.created) == (stored.key, stored.created)
    assert model_to_dict(token.user) | {"groups": None} == model_to_dict(stored.user) | {
        "groups": None
    }
    assert token.user.last_login == stored.user.last_login
    assert names == {"managers", "legal"}


def test_a_user_without_groups_has_none(make_user) -> None:
    token = token_with_user(Token.objects.create(user=make_user("solo")).key)
    assert token is not None and group_names(token.user) == set()


def test_an_unknown_token_or_an_inactive_user_is_refused(make_user) -> None:
    user = make_user("gone")
    key = Token.objects.create(user=user).key
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    unknown = client.get("/api/v1/tasks/")
    User.objects.filter(pk=user.pk).update(is_active=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    inactive = client.get("/api/v1/tasks/")

    assert unknown.status_code == inactive.status_code == 401
    assert unknown.json()["detail"] == "Invalid token."
    assert inactive.json()["detail"] == "User inactive or deleted."
