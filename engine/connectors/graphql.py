"""The `graphql` connector: a GraphQL query or mutation over HTTP POST.

Parameters: `url` (the endpoint), `query`, `variables` (an object), `operation_name`, and as
for `http`: `headers`, `basic_auth`, `timeout`. The call goes through the `http` connector
(the outbound policy; timeouts, 5xx and 429 retried). The result is the answer's `data`.
An answer with an `errors` array (whatever its HTTP status) is the BPMN error
`GRAPHQL_ERROR` with the errors' messages; its details keep `errors` and any partial `data`.
"""

from typing import Any

from . import BusinessError, ConnectorCall, connector
from .http import http_request


def _graphql_errors(body: Any) -> BusinessError | None:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return None
    items = errors if isinstance(errors, list) else [errors]
    messages = [str(item.get("message") if isinstance(item, dict) else item) for item in items[:10]]
    return BusinessError(
        "GRAPHQL_ERROR",
        "; ".join(messages)[:2000],
        {"errors": items, "data": body.get("data")},
    )


@connector(
    "graphql",
    description=(
        "Sends a GraphQL query: url, query, variables, operation_name, headers; the result "
        "is the answer's data. An errors array is the BPMN error GRAPHQL_ERROR."
    ),
)
def graphql_request(params: dict[str, Any], call: ConnectorCall) -> Any:
    query = params.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BusinessError("GRAPHQL_BAD_PARAMETERS", "The graphql connector needs a `query`.")
    variables = params.get("variables") or {}
    if not isinstance(variables, dict):
        raise BusinessError("GRAPHQL_BAD_PARAMETERS", "`variables` must be an object.")
    payload: dict[str, Any] = {"query": query, "variables": variables}
    if params.get("operation_name"):
        payload["operationName"] = str(params["operation_name"])
    headers = {"Accept": "application/graphql-response+json, application/json"}
    headers.update({str(k): str(v) for k, v in (params.get("headers") or {}).items()})
    request = {
        "method": "POST",
        "url": params.get("url"),
        "headers": headers,
        "json": payload,
        "basic_auth": params.get("basic_auth"),
        "timeout": params.get("timeout"),
    }
    try:
        response = http_request(request, call)
    except BusinessError as exc:
        # A GraphQL server may answer a bad query with a 4xx and its errors array.
        body = exc.details.get("body") if isinstance(exc.details, dict) else None
        raise (_graphql_errors(body) or exc) from None
    body = response["body"]
    error = _graphql_errors(body)
    if error is not None:
        raise error
    if not isinstance(body, dict) or "data" not in body:
        raise BusinessError("GRAPHQL_ERROR", "The answer is not a GraphQL response (no data).")
    return body["data"]
