"""Each worker checks the model it serves against the run's manifest, and refuses a mismatch.

Use ``expected_models(chain, ...)`` on the driver (the same ``ModelInfo`` its manifest records:
``backend_model_info`` of every role) and ``check_served(chain, expected, ...)`` on each worker
before its first item: the worker recomputes what it serves *on its own node* (a local model
file is hashed there; a named or default model is the one its sha256 names, which the local
backend verifies as it assembles it) and, for an OpenAI-compatible endpoint, asks the server's
``/models`` which model ids it serves. A difference is a ``ConfigError`` naming the role and both
models; the driver stops the run with it.
"""

from __future__ import annotations

import os

import httpx

from ponder.backends.openai_compat import split_base_url
from ponder.behaviour.records import ModelInfo
from ponder.config import BackendConfig, ChainConfig, OpenAIBackendConfig
from ponder.errors import ConfigError
from ponder.learning.collect.collector import backend_model_info
from ponder.secrets import without_userinfo

LIST_TIMEOUT_S = 10.0


def role_configs(chain: ChainConfig) -> dict[str, BackendConfig]:
    """Every role's backend config (``default`` is the chain's ``backend``)."""
    return {"default": chain.backend, **chain.roles}


def _where(role: str) -> str:
    return "backend" if role == "default" else f"roles.{role}"


def expected_models(
    chain: ChainConfig, model_file: str | None = None, model_role: str = "default"
) -> dict[str, ModelInfo]:
    """What each role serves, as the run's manifest records it (``model_file`` is the GGUF
    ``--model-file`` names for ``model_role``)."""
    return {
        role: backend_model_info(
            cfg, model_file if role == model_role else None, where=_where(role)
        )
        for role, cfg in role_configs(chain).items()
    }


async def check_served(
    chain: ChainConfig,
    expected: dict[str, ModelInfo],
    model_file: str | None = None,
    model_role: str = "default",
) -> None:
    """Refuse (``ConfigError``) when this node serves another model than ``expected``."""
    here = expected_models(chain, model_file, model_role)
    for role, cfg in role_configs(chain).items():
        want, got = expected.get(role), here[role]
        if want is None:
            continue
        if (want.sha256, want.name) != (got.sha256, got.name):
            raise ConfigError(
                _where(role),
                f"this worker serves {_who(got)}, not {_who(want)} as the run's manifest says; "
                "install the same model on every node",
            )
        if isinstance(cfg, OpenAIBackendConfig):
            served = await served_model_ids(cfg)
            if served is not None and want.name not in served:
                raise ConfigError(
                    _where(role),
                    f"the endpoint {got.file} serves {', '.join(sorted(served)) or 'no model'}, "
                    f"not {want.name!r} as the run's manifest says",
                )


def _who(m: ModelInfo) -> str:
    return f"{m.name} (sha256 {m.sha256})" if m.sha256 else m.name


async def served_model_ids(cfg: OpenAIBackendConfig) -> set[str] | None:
    """The model ids the endpoint lists at ``/models``; None when it lists none (no such route,
    or it does not answer: the run's own calls will say why)."""
    base = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    key = os.environ.get(cfg.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    root, query = split_base_url(without_userinfo(base))
    try:
        async with httpx.AsyncClient(timeout=LIST_TIMEOUT_S) as client:
            r = await client.get(root.rstrip("/") + "/models", headers=headers, params=query)
        if r.status_code != 200:
            return None
        data = r.json().get("data")
        return {str(m["id"]) for m in data} if isinstance(data, list) else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None  # the run's own calls report what is wrong with the endpoint
