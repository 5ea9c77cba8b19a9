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
    "A diagram script failed (nothing changed), or the Idempotency-Key was used with "
    "another body."
)
