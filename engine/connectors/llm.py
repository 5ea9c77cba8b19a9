"""`llm/chat`: a chat completion from an OpenAI-compatible API (OpenAI, Azure OpenAI's
compatible endpoint, vLLM, Ollama, LiteLLM, ...).

Parameters: `base_url` (e.g. https://api.openai.com/v1; the call goes to
`<base_url>/chat/completions`), `model`, `api_key` (a secret reference such as
`secret:OPENAI_API_KEY`; sent as a bearer token), `prompt` (the user message), `system`
(optional), `context` (optional object), `temperature`, `max_tokens`, `json_schema`
(optional), `timeout` (60 s).

The prompt and system texts are parameters like any other, so the diagram's expressions
build them from instance data (a Python f-string, JUEL, FEEL: evaluated in the sandbox);
besides, `{{ name }}` and `{{ name.path }}` placeholders in them are filled from `context`
(plain substitution, never a template language: nothing in the diagram runs here).

With `json_schema`, the API is asked for structured output (`response_format` json_schema)
and the answer must be JSON that validates against the schema before anything is stored;
otherwise the BPMN error `LLM_INVALID_OUTPUT`. The result is
`{"content": text, "json": the parsed answer (with json_schema), "model", "finish_reason",
"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}`, so the job's result
records the tokens used. HTTP failures are as for `http` (4xx: `HTTP_<status>`, 5xx and 429
retried).
"""

import json
import re
from typing import Any

from jsonschema import SchemaError, validators

from . import BusinessError, ConnectorCall, connector
from .http import http_request

DEFAULT_TIMEOUT_SECONDS = 60.0
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*}}")


def _bad(message: str) -> BusinessError:
    return BusinessError("LLM_BAD_PARAMETERS", message)


def _lookup(context: dict[str, Any], path: str) -> str:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise _bad(f"The prompt names {{{{ {path} }}}}, which `context` does not hold.")
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def rendered(text: Any, context: dict[str, Any], name: str) -> str:
    if not isinstance(text, str):
        raise _bad(f"`{name}` must be a text.")
    return PLACEHOLDER.sub(lambda match: _lookup(context, match.group(1)), text)


def _messages(params: dict[str, Any]) -> list[dict[str, str]]:
    context = params.get("context") or {}
    if not isinstance(context, dict):
        raise _bad("`context` must be an object.")
    messages = []
    if params.get("system"):
        messages.append(
            {"role": "system", "content": rendered(params["system"], context, "system")}
        )
    prompt = rendered(params.get("prompt"), context, "prompt")
    if not prompt.strip():
        raise _bad("llm/chat needs a `prompt`.")
    messages.append({"role": "user", "content": prompt})
    return messages


def _schema_validator(schema: Any) -> Any:
    if not isinstance(schema, dict):
        raise _bad("`json_schema` must be a JSON schema (an object).")
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise _bad(f"`json_schema` is not a valid JSON schema: {exc.message}") from None
    return cls(schema)


def _request_body(params: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("llm/chat needs a `model`.")
    body: dict[str, Any] = {"model": model, "messages": _messages(params)}
    for name in ("temperature", "max_tokens"):
        if params.get(name) is not None:
            body[name] = params[name]
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "result", "schema": schema, "strict": True},
        }
    return body


def _structured(content: str, validator: Any) -> Any:
    try:
        value = json.loads(content)
    except ValueError:
        raise BusinessError(
            "LLM_INVALID_OUTPUT", "The model's answer is not JSON.", {"content": content[:2000]}
        ) from None
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if problems:
        shown = "; ".join(
            f"{'/'.join(map(str, p.absolute_path)) or '(top)'}: {p.message}" for p in problems[:5]
        )
        raise BusinessError(
            "LLM_INVALID_OUTPUT",
            f"The model's answer does not match json_schema: {shown}",
            {"content": content[:2000]},
        )
    return value


def _usage(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return {
        name: int(usage.get(name) or 0)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


@connector(
    "llm/chat",
    description=(
        "Asks an OpenAI-compatible chat model: base_url, model, api_key (a secret), prompt, "
        "system, context, json_schema; the result has the answer and the tokens used."
    ),
)
def chat(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    base_url = params.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        raise _bad("llm/chat needs a `base_url`.")
    schema = params.get("json_schema")
    validator = _schema_validator(schema) if schema is not None else None
    headers = {}
    if params.get("api_key"):
        headers["Authorization"] = f"Bearer {params['api_key']}"
    response = http_request(
        {
            "method": "POST",
            "url": base_url.rstrip("/") + "/chat/completions",
            "headers": headers,
            "json": _request_body(params, schema),
            "timeout": params.get("timeout") or DEFAULT_TIMEOUT_SECONDS,
        },
        call,
    )
    answer = response["body"]
    try:
        choice = answer["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BusinessError(
            "LLM_BAD_RESPONSE", "The answer is not a chat completion (no choices)."
        ) from None
    if not isinstance(content, str):
        raise BusinessError("LLM_BAD_RESPONSE", "The model answered no text (a refusal?).")
    result: dict[str, Any] = {
        "content": content,
        "model": answer.get("model"),
        "finish_reason": choice.get("finish_reason"),
        "usage": _usage(answer),
    }
    if validator is not None:
        result["json"] = _structured(content, validator)
    return result
