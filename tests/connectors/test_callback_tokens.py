"""Callback tokens: bound to one job and one call of it, verified under SECRET_KEY or a key
it was rotated from."""

from typing import Any

from engine.connectors.callbacks import call_number, callback_token, token_call

JOB = "6f1c2d9e-1111-4c2b-9a51-3d1e2f3a4b5c"
OTHER = "6f1c2d9e-2222-4c2b-9a51-3d1e2f3a4b5c"


def test_a_token_opens_its_own_job_and_call_only() -> None:
    token = callback_token(JOB, call_number(0, 1))
    assert token_call(JOB, token) == "0.1"
    assert token_call(OTHER, token) is None
    # The call number is signed: changing it breaks the signature.
    forged = "1.1" + token[len("0.1") :]
    assert token_call(JOB, forged) is None
    assert callback_token(JOB, call_number(1, 1)) != token  # after an operator's retry
    for garbage in ("", ".", "0.1.", "x.y.abc", "0.1", "99999999999.1." + "0" * 64):
        assert token_call(JOB, garbage) is None


def test_tokens_survive_a_key_rotation(settings: Any) -> None:
    settings.SECRET_KEY = "the-old-key-" + "x" * 40
    token = callback_token(JOB, "0.1")
    settings.SECRET_KEY = "the-new-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = ["the-old-key-" + "x" * 40]
    assert token_call(JOB, token) == "0.1"
    settings.SECRET_KEY_FALLBACKS = []
    assert token_call(JOB, token) is None


def test_a_call_number_with_a_trailing_newline_is_not_a_call() -> None:
    # `$` would match before the newline; the signature is of the text as given.
    forged = callback_token("job-1", "0.1\n")
    assert token_call("job-1", forged) is None
    assert token_call("job-1", callback_token("job-1", "0.1")) == "0.1"
