"""A real two-node Ray cluster on this one machine, for the scale tests and benchmark.

``with TwoNodeCluster() as cluster: cluster.address`` runs ``ray start --head --num-cpus 1`` and
``ray start --address ... --num-cpus 1`` (ports and a temp dir of their own, so nothing of
another cluster on the machine is touched) and, on leaving, ends exactly the processes of this
cluster (those whose command line names its temp dir), by pid: never ``ray stop``, which would
stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TwoNodeCluster:
    def __init__(self, cpus: tuple[int, int] = (1, 1)) -> None:
        self.cpus = cpus
        self.temp = Path(tempfile.mkdtemp(prefix="prs", dir="/tmp"))  # short: socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def __enter__(self) -> TwoNodeCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [RAY, "start", *args], env=self.env, capture_output=True, text=True, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def _start(self) -> None:
        common = ("--node-ip-address", "127.0.0.1", "--disable-usage-stats")
        base = 40000 + (self.port % 20) * 1000
        self._run(
            "--head",
            f"--port={self.port}",
            f"--num-cpus={self.cpus[0]}",
            f"--temp-dir={self.temp}",
            "--include-dashboard=false",
            f"--min-worker-port={base}",
            f"--max-worker-port={base + 499}",
            f"--ray-client-server-port={_free_port()}",
            *common,
        )
        self._run(
            f"--address={self.address}",
            f"--num-cpus={self.cpus[1]}",
            f"--min-worker-port={base + 500}",
            f"--max-worker-port={base + 999}",
            *common,
        )

    def pids(self) -> list[int]:
        """The processes of this cluster: their command line names its temp dir."""
        mark = str(self.temp).encode()
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                if mark in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
        return out

    def workers(self, title: str) -> list[int]:
        """Worker processes (children of this cluster's raylets) whose title has ``title``."""
        raylets = set(self.pids())
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid in raylets and title in cmd:
                out.append(int(d.name))
        return out

    def _all(self) -> list[int]:
        """The cluster's processes and their direct children (workers rename themselves)."""
        own = set(self.pids())
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in own:
                own.add(int(d.name))
        own.discard(os.getpid())
        return sorted(own)

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self._all()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.time() + 10
            while self._all() and time.time() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)
