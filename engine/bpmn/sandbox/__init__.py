"""The script sandbox (DESIGN section 8): where diagram scripts and expressions run.

Engine side: `client` (a zygote per engine process, a fresh sandbox process per operation),
`wire` (how values cross), `policy` (compiling). Sandbox side: `process_main` (the zygote),
`jail` (what the operating system lets a sandbox process see and do), `runner` (one request),
`safe_builtins`, `allowed` (the importable modules, as data), `access`, `operators` and
`formatting` (the guards), `limits` and `errors`.

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
