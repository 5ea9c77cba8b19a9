"""`slack/PostMessage`: SpiffArena's Slack command, posting `message` to `channel` with the
bot `token` (which names a secret) through Slack's Web API method chat.postMessage.

The Web API's base URL is the setting BATON_SLACK_API_URL. The call goes through the `http`
connector (the outbound policy, retries of 5xx and 429); the result is Slack's answer
(`{"ok": true, "channel": ..., "ts": ...}`); an answer with `ok` false is the BPMN error
`SLACK_<error>` (`SLACK_CHANNEL_NOT_FOUND`, `SLACK_INVALID_AUTH`, ...).
"""

from typing import Any

from django.conf import settings

from . import BusinessError, ConnectorCall, connector
from .http import http_request


@connector("slack/PostMessage", description="SpiffArena's Slack command: posts a message.")
def post_message(params: dict[str, Any], call: ConnectorCall) -> Any:
    token, channel = params.get("token"), params.get("channel")
    if not token or not channel:
        raise BusinessError(
            "SLACK_BAD_PARAMETERS", "slack/PostMessage needs a token and a channel."
        )
    response = http_request(
        {
            "method": "POST",
            "url": settings.BATON_SLACK_API_URL.rstrip("/") + "/chat.postMessage",
            "headers": {"Authorization": f"Bearer {token}"},
            "json": {"channel": str(channel), "text": str(params.get("message") or "")},
        },
        call,
    )
    body = response["body"]
    if not isinstance(body, dict) or body.get("ok") is not True:
        error = str(body.get("error") if isinstance(body, dict) else "bad_response")
        raise BusinessError(f"SLACK_{error.upper()}", f"Slack answered: {error}", body)
    return body
