"""Shared OpenAPI pieces: every error is documented as problem details (RFC 7807)."""

from drf_spectacular.utils import OpenApiResponse

from .serializers import ProblemSerializer


def problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(ProblemSerializer, description=description)


BAD_REQUEST = problem("The request is not valid; `errors` names each problem.")
UNAUTHENTICATED = problem("No valid token or session.")
FORBIDDEN = problem("The caller's groups do not allow this.")
NOT_FOUND = problem("No such object.")
CONFLICT = problem("The object is not in a state that allows this.")
UNPROCESSABLE = problem(
    "A diagram script failed (nothing changed), or the Idempotency-Key was used with another body."
)


PROBLEM_MEDIA_TYPE = "application/problem+json"
# What any endpoint may answer besides its own documented outcomes.
COMMON_ERRORS = {
    "400": "The request is not valid (body, query parameters or headers).",
    "401": "No valid token or session.",
    "403": "The caller may not do this.",
    "404": "No such object or page.",
    "405": "The method is not allowed here.",
    "406": "The requested response format is not available.",
    "411": "A chunked body on a server that cannot read one; send a Content-Length.",
    "413": "The request body is over its cap (BATON_MAX_JSON_BYTES; deployments: "
    "BATON_MAX_DEPLOYMENT_BYTES).",
    "415": "The body's content type is not accepted.",
    "429": "Too many requests; see Retry-After.",
    "500": "The server failed; the error was logged.",
}


def problem_responses(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular postprocessing: every error response is problem+json, and every
    operation documents the errors any endpoint may give."""
    reference = {"$ref": "#/components/schemas/Problem"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
            for code, description in COMMON_ERRORS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": reference}},
                    },
                )
    return result
