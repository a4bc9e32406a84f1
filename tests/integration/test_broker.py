"""The embedded broker starts, answers metadata, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from streams.broker import BrokerError, EmbeddedBroker, metadata_ok

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split()[2] != "Z"


def test_start_answers_metadata_and_stop_leaves_no_process() -> None:
    with EmbeddedBroker() as broker:
        assert broker.proc is not None
        pid = broker.proc.pid
        assert asyncio.run(metadata_ok(broker.bootstrap))
    assert not _alive(pid)
    assert not asyncio.run(metadata_ok(broker.bootstrap, timeout_s=0.5))


def test_a_taken_port_is_a_clear_error_and_no_orphan(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="in use|not ready"):
        EmbeddedBroker(broker.port).start(timeout_s=5)


def test_a_killed_parent_takes_the_broker_with_it() -> None:
    code = (
        "from streams.broker import EmbeddedBroker; import time\n"
        "b = EmbeddedBroker().start(); print(b.proc.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
