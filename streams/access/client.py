"""The key leadflow's own clients send: `leadflow trace`, the simulator, the dashboard, `up`.

``LEADFLOW_API_KEY`` (or ``api_key``) when set; else the file ``DATA_DIR/api-key`` that
`leadflow up` writes when it makes a key for the processes it starts (readable by its owner
only), so a `leadflow trace` in another terminal of the same checkout needs no setup.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

KEY_FILE = "api-key"
ENV = "LEADFLOW_API_KEY"


def key_file(settings: Any) -> Path:
    return Path(settings.data_path) / KEY_FILE


def client_key(settings: Any) -> str:
    if settings.api_key:
        return str(settings.api_key)
    with contextlib.suppress(OSError):
        return key_file(settings).read_text(encoding="utf-8").strip()
    return ""


def env_key() -> str:
    """The key of a caller that has no settings at hand (a test, a script): the variable."""
    return os.environ.get(ENV, "")


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def write_key_file(settings: Any, key: str) -> Path:
    """Store ``key`` where `client_key` finds it, readable by its owner only."""
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path
