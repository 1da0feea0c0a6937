"""GRPO on an SSA aggregator from Python: RFT adapter in, a served model name out.

    scripts/setup-train-venv.sh
    .venv-train/bin/python examples/train_ssa_grpo.py SSA_DATA.jsonl RFT_ADAPTER_DIR

``SSA_DATA.jsonl`` is what ``ponder ssa data`` wrote from a collection on *train* questions;
``RFT_ADAPTER_DIR`` is a ``ponder ssa train`` output (e.g. ~/.cache/ponder/ssa/ssa-0.5b-rft),
or ``-`` to start from the base model. A few steps only: on 2 CPU cores one step of 2 prompts x
4 completions of the default 0.5B model takes minutes (docs/ssa.md, "GRPO"); on a GPU raise
``steps`` and ``prompts_per_step``. The result is registered as ``ssa-0.5b-grpo-example``, so a
chain can name it: ``roles: {aggregator: {kind: local, model: ssa-0.5b-grpo-example}}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ponder.backends.local.cache import cache_dir
from ponder.backends.vllm_model import prepare_hf_model
from ponder.learning.ssa.export import export_ssa
from ponder.learning.ssa.grpo import GRPOSettings, grpo_ssa


def main(data: str, init: str) -> None:
    base = prepare_hf_model(None)  # the default model's HF copy (converted once, verified)
    out = cache_dir() / "ssa" / "ssa-0.5b-grpo-example"
    settings = GRPOSettings(steps=3, prompts_per_step=2, group=4, max_new_tokens=64,
                            last_layers=8, lr=2e-5)  # fmt: skip
    meta = grpo_ssa(data, base, out, settings, init_adapter=None if init == "-" else init,
                    force=True)  # fmt: skip
    print(f"{meta['steps']} steps, {meta['s_per_step']} s/step, mean reward by half: "
          f"{meta['reward_first_half']} -> {meta['reward_second_half']}")  # fmt: skip
    rec = export_ssa(out, name="ssa-0.5b-grpo-example")
    print(f"registered {rec['name']}: {rec['file']}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not Path(sys.argv[1]).is_file():
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
