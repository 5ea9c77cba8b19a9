"""The C library calls Python 3.11's `os` module lacks (mount, unshare, prctl, capset)."""

import ctypes
import ctypes.util
import os
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def call(name: str, *args: Any) -> int:
    """Call `name`; raise OSError (with the errno) when it fails."""
    result: int = getattr(_libc, name)(*args)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")
    return result


def attempt(name: str, *args: Any) -> bool:
    """Call `name`; whether it succeeded."""
    return bool(getattr(_libc, name)(*args) == 0)
