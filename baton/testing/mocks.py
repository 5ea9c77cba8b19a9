"""Mocked connectors of a process test: what a service task's call answers instead of the
real connector.

A mock is declared for a connector name (`"http"`, `"crm.create_customer"`) or for one
service task's element id, which wins over its connector's mock. Each declaration adds an
answer to that name's queue; a call takes the first answer, and the last one stays for every
later call: `mock("http", transient="timeout")` then `mock("http", result={...})` fails the
first call and answers every retry.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.connectors import BusinessError, ConnectorCall, ConnectorFunction, TransientError

_UNSET: Any = object()


class NotMocked(AssertionError):
    """A service task called a connector that the test did not mock."""


@dataclass(frozen=True)
class Answer:
    """One answer of a mock: a result, a BPMN error, a transient failure, or a function of
    the call's parameters."""

    result: Any = None
    error: str = ""  # a BPMN error code: caught by an error boundary event with this code
    message: str = ""
    details: Any = None
    transient: str = ""  # a retryable failure: the attempt is used, a retry is scheduled
    handler: Callable[[dict[str, Any]], Any] | None = None

    def __call__(self, params: dict[str, Any]) -> Any:
        if self.transient:
            raise TransientError(self.transient)
        if self.error:
            raise BusinessError(self.error, self.message or self.error, self.details)
        if self.handler is not None:
            return self.handler(params)
        return self.result


def answer_of(
    result: Any = _UNSET,
    *,
    error: str = "",
    message: str = "",
    details: Any = None,
    transient: str = "",
    handler: Callable[[dict[str, Any]], Any] | None = None,
) -> Answer:
    given = [result is not _UNSET, bool(error), bool(transient), handler is not None]
    if sum(given) != 1:
        raise TypeError("Give a mock exactly one of: result, error=, transient=, handler=.")
    return Answer(
        result=None if result is _UNSET else result,
        error=error,
        message=message,
        details=details,
        transient=transient,
        handler=handler,
    )


class Mocks:
    """The mocks of one test, by connector name or element id, and the connectors allowed
    to run for real."""

    def __init__(self) -> None:
        self._answers: dict[str, list[Answer]] = {}
        self.real: set[str] = set()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (element, connector, params)

    def add(self, name: str, answer: Answer) -> None:
        self._answers.setdefault(name, []).append(answer)

    def covers(self, connector: str, element_id: str) -> bool:
        return element_id in self._answers or connector in self._answers

    def _next(self, name: str) -> Answer:
        queue = self._answers[name]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def lookup(self, connector: str) -> ConnectorFunction | None:
        """The connector function the engine calls for `connector` (engine.connectors'
        substitutes): a dispatcher that answers by element id first, then by name."""
        if connector in self.real or not self._answers:
            return None

        def dispatch(params: dict[str, Any], call: ConnectorCall) -> Any:
            name = call.element_id if call.element_id in self._answers else connector
            if name not in self._answers:
                raise NotMocked(not_mocked_message(connector, call.element_id))
            self.calls.append((call.element_id, connector, params))
            return self._next(name)(params)

        return dispatch


def not_mocked_message(connector: str, element_id: str) -> str:
    return (
        f"connector {connector} is not mocked (service task {element_id}): mock it with "
        f"run.mock({connector!r}, result=...) or run.mock({element_id!r}, ...), or let it "
        f"run for real with baton.use_real_connector({connector!r})"
    )
