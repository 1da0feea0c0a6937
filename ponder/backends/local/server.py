"""Run llama.cpp's HTTP server as a child process on a free loopback port.

Use ``LlamaServer(runtime, model).start()``, where ``runtime`` is a ``Runtime`` (the prebuilt
xllamacpp wheel or the native binary, see ``runtime.py``) or the path of a ``llama-server``
binary; it waits until ``/health`` answers, and ``stop()`` (also registered with ``atexit``) ends
it. Both runtimes take the same flags. If the CPU advertises instructions the VM does not enable,
llama.cpp's weight repacking dies with SIGILL at start; that is detected and retried once with
``--no-repack``.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from ponder.backends.local.runtime import Runtime
from ponder.errors import ServerStartError

DEFAULT_N_PARALLEL = 8
DEFAULT_CTX_PER_SLOT = 4096
START_TIMEOUT_S = 180.0


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the parent dies, so a killed
    Python process never leaves an orphaned llama-server behind (atexit does not run on SIGKILL
    or an unhandled SIGTERM). No-op elsewhere."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class HttpAddress:
    """Where a server listening on ``host``:``port`` answers: ``url``, and ``base_url`` (its
    OpenAI-compatible routes, where an OpenAI client points)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


class LlamaServer(HttpAddress):
    """One llama.cpp server process. ``n_parallel`` slots of ``ctx_per_slot`` tokens each."""

    def __init__(
        self,
        binary: Path | Runtime,
        model: Path,
        *,
        n_parallel: int = DEFAULT_N_PARALLEL,
        ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
        threads: int | None = None,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.runtime: Runtime | None = binary if isinstance(binary, Runtime) else None
        self.launcher: list[str] = (
            list(binary.launcher) if isinstance(binary, Runtime) else [str(binary)]
        )
        self.model = model
        self.n_parallel = n_parallel
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or os.cpu_count() or 2
        self.host = host
        self.extra_args = list(extra_args)
        self.port = 0
        self.log_path = (
            log_path
            or Path(os.environ.get("TMPDIR", "/tmp")) / f"ponder-llama-{os.getpid()}-{id(self)}.log"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.no_repack = False

    @property
    def what(self) -> str:
        """How messages name this server: ``llama-server (prebuilt runtime)`` etc."""
        return f"llama-server ({self.runtime.name} runtime)" if self.runtime else "llama-server"

    def command(self) -> list[str]:
        cmd = [
            *self.launcher,
            "-m",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "-np",
            str(self.n_parallel),
            "-c",
            str(self.n_parallel * self.ctx_per_slot),
            "-t",
            str(self.threads),
            "--alias",
            "local",
        ]
        if self.no_repack:
            cmd.append("--no-repack")
        return cmd + self.extra_args

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory so far (Linux ``VmHWM``), in MB."""
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LlamaServer:
        if not self.model.is_file():
            raise ServerStartError(f"model file {self.model} does not exist")
        try:
            self._launch_and_wait(timeout_s)
        except ServerStartError:
            if self.returncode() == -signal.SIGILL and not self.no_repack:
                self.no_repack = True  # see module docstring
                self._launch_and_wait(timeout_s)
            else:
                raise
        atexit.register(self.stop)
        return self

    def _launch_and_wait(self, timeout_s: float) -> None:
        self.port = free_port(self.host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                rc = self._proc.poll()
                if rc is not None:
                    raise ServerStartError(
                        f"{self.what} exited with code {rc} during start-up "
                        f"(command: {' '.join(self.command())}); last log lines:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        self.stop()
        raise ServerStartError(
            f"{self.what} did not become healthy at {self.url} within {timeout_s:.0f}s; "
            f"last log lines:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
