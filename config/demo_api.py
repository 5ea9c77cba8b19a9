"""A tiny credit-score API that the credit-check example calls, so that it runs out of the box.

Served under /demo-api/ when BATON_DEMO_API is on (the default outside production).
Customer ids starting with `unknown` get a 404; every other id a stable score.
"""

import hashlib

from django.http import HttpRequest, JsonResponse
from django.urls import path


def credit_score(request: HttpRequest, customer_id: str) -> JsonResponse:
    if customer_id.lower().startswith("unknown"):
        return JsonResponse({"detail": f"No customer {customer_id!r}."}, status=404)
    digest = int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16)
    return JsonResponse({"customer_id": customer_id, "score": 300 + digest % 551})


urlpatterns = [path("credit-score/<str:customer_id>/", credit_score, name="demo-credit-score")]
