"""Model preparation for the in-process vLLM backend: turn a GGUF file vLLM cannot load into a
cached Hugging Face (bf16 safetensors) directory, verified and reused.

Use ``prepare_hf_model()`` (or ``ponder prepare-vllm [GGUF]``) once; ``resolve_model_dir`` is what
``VLLMBackend`` calls: an HF model directory is used as is, a ``.gguf`` file (or ``None`` for the
default model) maps to its converted directory under ``~/.cache/ponder/hf/<name>``. The directory
carries a marker (``ponder-converted.json``) with the source file's sha256 and the files written;
a directory whose marker does not match its source is converted again, never trusted.

Needs ``transformers``, ``gguf`` and ``torch`` (the ``vllm`` extra brings them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ponder.backends.local.cache import cache_dir, file_lock
from ponder.backends.local.model import ensure_model, sha256_file
from ponder.backends.local.progress import say
from ponder.errors import LocalModelError, MissingExtraError, ModelIntegrityError

MARKER = "ponder-converted.json"
FORMAT = 1
REQUIRED = ("config.json", "tokenizer_config.json")


def hf_cache_root() -> Path:
    return cache_dir() / "hf"


def is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def converted_dir_for(gguf: Path) -> Path:
    return hf_cache_root() / gguf.name.removesuffix(".gguf")


def resolve_model_dir(model: str | Path | None, *, quiet: bool = False) -> Path:
    """The HF directory to load: as given, or the converted (cached) form of a GGUF file."""
    if model is None:
        return prepare_hf_model(None, quiet=quiet)
    path = Path(model).expanduser()
    if is_hf_dir(path):
        return path
    if path.is_file() and path.suffix == ".gguf":
        return prepare_hf_model(path, quiet=quiet)
    if path.exists():
        raise LocalModelError(
            f"{path} is neither a Hugging Face model directory (with config.json) nor a .gguf file"
        )
    return path  # not local: let vLLM treat it as a hub id (fails offline with vLLM's message)


def _read_marker(target: Path) -> dict[str, object] | None:
    try:
        data = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_converted(target: Path, source_sha256: str) -> bool:
    """True when ``target`` is a complete conversion of the file with ``source_sha256``."""
    marker = _read_marker(target)
    if not marker or marker.get("source_sha256") != source_sha256 or marker.get("format") != FORMAT:
        return False
    files = marker.get("files")
    if not isinstance(files, dict):
        return False
    for name, size in files.items():
        f = target / str(name)
        if not f.is_file() or f.stat().st_size != size:
            return False
    return all((target / r).is_file() for r in REQUIRED)


def prepare_hf_model(
    gguf: str | Path | None = None,
    *,
    out: str | Path | None = None,
    quiet: bool = False,
    force: bool = False,
) -> Path:
    """Convert ``gguf`` (default: the default model, assembled and verified first) to a cached
    HF bf16 directory and return it; reuse a verified earlier conversion."""
    source = ensure_model(quiet=quiet) if gguf is None else Path(gguf).expanduser()
    if not source.is_file():
        raise LocalModelError(f"GGUF file {source} does not exist")
    target = Path(out).expanduser() if out else converted_dir_for(source)
    digest = _source_digest(source, quiet=quiet)
    if not force and check_converted(target, digest):
        return target
    with file_lock("vllm-convert"):  # two processes never convert the same model at once
        if force or not check_converted(target, digest):
            _convert(source, target, digest, quiet=quiet)
    if not check_converted(target, digest):
        raise ModelIntegrityError(f"conversion of {source} to {target} did not verify")
    return target


def _source_digest(source: Path, *, quiet: bool) -> str:
    """sha256 of the source, cached next to it by size+mtime (the local model's own marker)."""
    verified = source.with_name(source.name + ".verified")
    st = source.stat()
    try:
        m = json.loads(verified.read_text())
        if m.get("size") == st.st_size and m.get("mtime_ns") == st.st_mtime_ns:
            return str(m["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    return sha256_file(source, quiet=quiet)


def _convert(source: Path, target: Path, digest: str, *, quiet: bool) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError(
            f"converting GGUF for vLLM needs transformers, gguf and torch: pip install "
            f"'ponder[vllm]' (or run scripts/setup-vllm-venv.sh) ({exc})"
        ) from exc
    say(
        f"vLLM: converting {source.name} to a Hugging Face bf16 directory (once, ~1 min) ...",
        quiet=quiet,
    )
    started = time.monotonic()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        kwargs: dict[str, object] = {"gguf_file": source.name}
        tok = AutoTokenizer.from_pretrained(str(source.parent), **kwargs)
        kwargs["dtype"] = torch.bfloat16
        try:
            from transformers import GgufConfig  # type: ignore[attr-defined]

            kwargs["quantization_config"] = GgufConfig(dequantize=True)
        except ImportError:
            pass
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), **kwargs)
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        del model
    except MissingExtraError:
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LocalModelError(
            f"could not convert {source} for vLLM: {type(exc).__name__}: {exc}"
        ) from exc
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    marker = {"format": FORMAT, "source": str(source), "source_sha256": digest, "files": files}
    (tmp / MARKER).write_text(json.dumps(marker, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(target)
    say(f"vLLM: converted in {time.monotonic() - started:.0f} s -> {target}", quiet=quiet)
