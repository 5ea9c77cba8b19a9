"""How a failed call's URL is shown in an incident (finding 1.3): userinfo always masked,
token-like path segments and query values masked, credential-named query values masked."""

import pytest

from engine.connectors.http import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ghp_abc123@github.com/x", "https://***@github.com/x"),
        ("https://user:pass@example.com/a", "https://***@example.com/a"),
        ("https://:pass@example.com:8443/a", "https://***@example.com:8443/a"),
        (
            "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.example.com/services/T000/B000/***",
        ),
        (
            "https://api.example.com/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
            "https://api.example.com/***/getMe",
        ),
        (
            "http://127.0.0.1:8000/customers/unknown-42?api_key=K-9f8e7d6c5b4a&page=2",
            "http://127.0.0.1:8000/customers/unknown-42?api_key=***&page=2",
        ),
        (
            "https://example.com/search?q=ghp_0123456789abcdefABCDEF&page=2",
            "https://example.com/search?q=***&page=2",
        ),
        ("https://example.com/orders/2024/items", "https://example.com/orders/2024/items"),
    ],
    ids=[
        "user-only-credential",
        "user-and-password",
        "password-only-with-port",
        "webhook-token-in-path",
        "bot-token-with-colon",
        "credential-named-query",
        "token-like-query-value",
        "ordinary-path",
    ],
)
def test_a_failed_calls_url_is_shown_without_its_secrets(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_an_unreadable_url_is_not_shown() -> None:
    assert shown_url("http://[::1") == "(an invalid URL)"
