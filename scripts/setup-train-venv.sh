#!/usr/bin/env bash
# Create (or reuse) the separate virtual environment for SSA aggregator training
# (`ponder ssa train`, `ponder ssa export`; docs/ssa.md).
#
# Training needs torch, transformers and peft, which the main install must never need, so they live
# in their own venv: $PONDER_TRAIN_VENV (default: .venv-train in the repository root), with
# `pip install -e '.[train,test]'`. Idempotent: a stamp file records what was installed; a second
# run with the same inputs does nothing. Wheels are cached under ~/.cache/ponder/pip-train.
# torch is pinned first ($PONDER_TRAIN_TORCH_SPEC) so pip takes the CPU build rather than a newer
# CUDA one (several GB) that a plain `torch>=2.4` would resolve to.
# Then the default model's HF copy is prepared (`ponder prepare-vllm`: the default GGUF converted
# once to ~/.cache/ponder/hf, verified reuse): the training base and the tests' tokenizer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PONDER_TRAIN_VENV:-$ROOT/.venv-train}"
PY="${PONDER_TRAIN_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_SPEC="${PONDER_TRAIN_TORCH_SPEC:-torch==2.13.*}"
STAMP="$VENV/.ponder-train-ready"
WANT="$TORCH_SPEC|$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/ponder/pip-train}"
CHECK="import torch, transformers, peft, gguf, ponder"

prepare_model() {
  [[ "${PONDER_TRAIN_SKIP_MODEL:-0}" == 1 ]] || "$VENV/bin/python" -m ponder prepare-vllm --quiet
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  echo "train venv ready: $VENV"
  prepare_model
  exit 0
fi
echo "setting up train venv in $VENV ($TORCH_SPEC) ..."
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q -e "$ROOT[train,test]"
"$VENV/bin/python" -c "$CHECK; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
echo "$WANT" > "$STAMP"
echo "train venv ready: $VENV"
prepare_model
