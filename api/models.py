"""What the API keeps of its own: the first response to a request with an Idempotency-Key."""

from django.db import models

from engine.models import OperationKey


class IdempotentResponse(models.Model):
    """The first response to a request sent with an `Idempotency-Key`, replayed for retries.
    The key itself (reserved with the operation, in its transaction) is the engine's."""

    operation = models.OneToOneField(
        OperationKey, primary_key=True, on_delete=models.CASCADE, related_name="response"
    )
    status_code = models.PositiveSmallIntegerField()
    # The body as DRF's JSON renderer wrote it ("" for none): JSONB would reorder its keys.
    body = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.status_code} for {self.operation}"
