"""What goes wrong in a sandbox: the errors a script's task fails with."""


class ScriptError(Exception):
    """A diagram script broke a sandbox rule or limit."""


class ScriptNotAllowed(ScriptError):
    """The script uses something diagram scripts may not use."""


class ScriptLimitExceeded(ScriptError):
    """The script would build something too large, or use too much memory."""


class ScriptTimeLimitExceeded(ScriptLimitExceeded):
    """The script ran out of CPU time."""


def time_limit_exceeded(
    seconds: float, *, line: int | None = None, killed: bool = False
) -> ScriptTimeLimitExceeded:
    """The error of a script stopped at its time limit (by the sandbox itself, at `line`, or
    by the engine, which `killed` its process)."""
    where = f" at line {line}" if line else ""
    how = " (its sandbox process was killed)" if killed else ""
    error = ScriptTimeLimitExceeded(
        f"The script ran longer than its time limit of {seconds:g} s and was stopped{where}{how}."
    )
    error.line = line  # type: ignore[attr-defined]
    return error


class SandboxUnavailable(ScriptError):
    """No sandbox process could be started or reached."""


class TimeLimitSignal(BaseException):
    """Raised into the script by the trace function; not an Exception, so that `except
    Exception` in a script does not catch it."""

    def __init__(self, line: int | None) -> None:
        super().__init__(line)
        self.line = line


# The errors that cross from the sandbox to the engine by name.
SANDBOX_ERRORS: dict[str, type[ScriptError]] = {
    cls.__name__: cls
    for cls in (ScriptError, ScriptNotAllowed, ScriptLimitExceeded, ScriptTimeLimitExceeded)
}
