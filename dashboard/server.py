"""Running the dashboard: `leadflow dashboard` in the foreground, `leadflow up` beside the
worker. Both are `streamlit run dashboard/app.py` with leadflow's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from streams.broker import stop_process
from streams.settings import Settings

APP = Path(__file__).with_name("app.py")


def command(settings: Settings, *, port: int | None = None, host: str | None = None) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port or settings.dashboard_port),
        "--server.address", host or settings.dashboard_host,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--theme.base", "light",
    ]


def url(settings: Settings, port: int | None = None, host: str | None = None) -> str:
    return f"http://{host or settings.dashboard_host}:{port or settings.dashboard_port}"


def serve(settings: Settings, *, port: int | None = None, host: str | None = None) -> int:
    """Run the dashboard in the foreground until Ctrl-C; its exit code."""
    print(f"dashboard {url(settings, port, host)}  (archive: LEADFLOW_ARCHIVE_DIR, "
          f"personal data for: {', '.join(settings.dashboard_pii_viewers) or 'nobody'})",
          flush=True)
    from streams.broker import _die_with_parent

    proc = subprocess.Popen(command(settings, port=port, host=host), preexec_fn=_die_with_parent)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A service manager's SIGTERM stops the server like Ctrl-C does.
    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return stop_process(proc, 10)


def start(settings: Settings, log: IO[bytes], *, env: dict[str, str] | None = None,
          preexec_fn: object = None) -> subprocess.Popen[bytes]:
    """The dashboard as a child process (for `leadflow up`), its output in ``log``."""
    return subprocess.Popen(command(settings), env=env or dict(os.environ), stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=preexec_fn)  # type: ignore[arg-type]
