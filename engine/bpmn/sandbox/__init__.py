"""The script sandbox (DESIGN section 8): where diagram scripts and expressions run.

Engine side: `leases` (which sandbox process an operation's scripts run in: one per process
definition, or a fresh one), `client` (the zygote of an engine process and the processes it
forks), `wire` (how values cross), `policy` (compiling), `kept` (what a script may leave).
Sandbox side: `process_main` (the zygote and a sandbox process's loop), `jail` (what the
operating system lets them see and do), `syscalls` (the seccomp filter), `libc`, `runner`
(one request), `safe_builtins`, `allowed` (the importable modules, as data), `access`,
`operators` and `formatting` (the guards), `limits` and `errors`.

Nothing here imports Django or the rest of the engine: the sandbox side runs in processes
that must not hold the engine's settings.
"""

from .errors import (
    SandboxUnavailable,
    ScriptError,
    ScriptLimitExceeded,
    ScriptNotAllowed,
    ScriptTimeLimitExceeded,
)

__all__ = [
    "SandboxUnavailable",
    "ScriptError",
    "ScriptLimitExceeded",
    "ScriptNotAllowed",
    "ScriptTimeLimitExceeded",
]
