"""glibc malloc for a long-running worker: few arenas, freed memory handed back.

RocksDB's flush and compaction threads allocate and free blocks of a few KiB to a MiB;
glibc gives each thread an arena of its own (up to 8 per core) and keeps what is freed in
them, so the resident set grows long after the live memory has stopped growing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)

_libc: list[Any] = []


def _lib() -> Any:
    if not _libc:
        try:
            _libc.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"))
        except OSError:
            _libc.append(None)
    return _libc[0]


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas for the threads started from now on (glibc only)."""
    lib = _lib()
    return bool(lib is not None and hasattr(lib, "mallopt") and lib.mallopt(M_ARENA_MAX, n))


def trim() -> bool:
    """Hand the free memory at the top and inside glibc's heaps back to the kernel."""
    lib = _lib()
    return bool(lib is not None and hasattr(lib, "malloc_trim") and lib.malloc_trim(0))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def info() -> dict[str, int] | None:
    """glibc's own account (mallinfo2): bytes in use, free but kept in its heaps, mmapped."""
    lib = _lib()
    if lib is None or not hasattr(lib, "mallinfo2"):
        return None
    lib.mallinfo2.restype = _MallInfo2
    m = lib.mallinfo2()
    return {"heap": m.arena, "in_use": m.uordblks, "free_kept": m.fordblks, "mmapped": m.hblkhd}
