"""A reward model behind HTTP: one score per conversation, no generation.

``RewardModelBackend`` serves ``RewardRequest``s (the ``reward_model`` scorer sends them with
``role="reward"``). ``api_format`` names the wire format; each format is a path plus a parser:

- ``vllm_pooling``: ``POST {base_url}/pooling`` with ``{"model", "messages"}`` (vLLM's pooling
  API, e.g. ``vllm serve <reward model> --task reward``, or ``--runner pooling`` on newer vLLM).
  The answer is ``{"data": [{"index": 0, "data": ...}], "usage": {"prompt_tokens": ...}}`` where
  ``data`` is one row of values (a sequence-level head) or one row per token (a token-level reward
  head); the score is the last token's row, element ``label_index``.
- ``vllm_classify``: ``POST {base_url}/classify`` with ``{"model", "messages"}``; the score is
  ``data[0]["probs"][label_index]`` (a classifier-style reward model).

``label_index`` defaults to -1: the only value of a one-value head, the positive class of a
two-class one. ``extra_body`` is merged into every request (e.g. ``{"task": "token_classify"}``).
This module is the boundary where ``httpx`` errors become ``ponder.errors``; every message names
the URL. Add a format by adding a path to ``PATHS`` and a parser to ``PARSERS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import httpx

from ponder.backends.base import Backend, Capabilities, bound_chat_tokens
from ponder.errors import (
    BackendError,
    CapabilityMissing,
    ConfigError,
    EndpointUnreachable,
    GenerationTimeout,
    error_for_status,
    retry_after_s,
)
from ponder.protocol.requests import Completion, GenerationRequest, Reward, RewardRequest
from ponder.secrets import redact

ApiFormat = Literal["vllm_pooling", "vllm_classify"]
API_FORMATS: tuple[str, ...] = get_args(ApiFormat)
DEFAULT_TIMEOUT_S = 120.0


def _last_row(values: Any) -> list[Any]:
    """A pooling output's row for the sequence: itself, or its last token's row."""
    if isinstance(values, list) and values and isinstance(values[0], list):
        return list(values[-1])
    if not isinstance(values, list):
        raise TypeError(f"expected a list of floats, got {type(values).__name__}")
    return values


def parse_vllm_pooling(payload: dict[str, Any], label_index: int) -> float:
    return float(_last_row(payload["data"][0]["data"])[label_index])


def parse_vllm_classify(payload: dict[str, Any], label_index: int) -> float:
    return float(payload["data"][0]["probs"][label_index])


PATHS: dict[str, str] = {"vllm_pooling": "/pooling", "vllm_classify": "/classify"}
PARSERS: dict[str, Callable[[dict[str, Any], int], float]] = {
    "vllm_pooling": parse_vllm_pooling,
    "vllm_classify": parse_vllm_classify,
}


class RewardModelBackend(Backend):
    """Scores conversations with a reward model over HTTP; ``generate`` is refused."""

    name = "reward_model"

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_format: str = "vllm_pooling",
        label_index: int = -1,
        extra_body: dict[str, Any] | None = None,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if api_format not in API_FORMATS:
            raise ConfigError(
                "backend.api_format",
                f"got {api_format!r}; valid choices: {', '.join(API_FORMATS)}",
            )
        if not base_url:
            raise ConfigError("backend.base_url", "a reward model needs the server's base URL")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + PATHS[api_format]
        self.model = model
        self.api_format = api_format
        self.label_index = label_index
        self.extra_body = dict(extra_body or {})
        self._parse = PARSERS[api_format]
        self._secret = api_key if api_key and len(api_key) >= 4 else None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=headers)

    async def generate(self, request: GenerationRequest) -> Completion:
        raise CapabilityMissing(
            f"the reward model at {self.url} cannot generate text (role {request.role!r}); "
            "give that role a generation backend",
            url=self.url,
        )

    async def capabilities(self) -> Capabilities:
        return Capabilities(native_n=False, raw_completion=False, reward=True)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def reward(self, request: RewardRequest) -> Reward:
        body: dict[str, Any] = {**self.extra_body, "messages": list(request.messages)}
        if self.model:
            body["model"] = self.model
        t0 = time.perf_counter()
        try:
            resp = await self._http.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise GenerationTimeout(
                f"the reward model at {self.url} did not answer in time", url=self.url
            ) from exc
        except httpx.HTTPError as exc:
            raise EndpointUnreachable(
                f"cannot reach the reward model at {self.url}: {exc or type(exc).__name__}",
                url=self.url,
            ) from exc
        if resp.status_code >= 400:
            detail = self._redact(_detail(resp))
            where = f"the reward model at {self.url}"
            after = retry_after_s(resp.headers)
            raise error_for_status(
                resp.status_code, where, detail, url=self.url, retry_after_s=after
            )
        try:
            payload = resp.json()
            score = self._parse(payload, self.label_index)
            usage = payload.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(
                f"the reward model at {self.url} answered without a {self.api_format} score "
                f"({type(exc).__name__}: {exc}): {self._redact(resp.text[:300])}",
                url=self.url,
                status=resp.status_code,
            ) from exc
        return Reward(
            score=score,
            # without the server's usage, a safe bound (the budget charges what this says)
            prompt_tokens=prompt_tokens or bound_chat_tokens(request.messages),
            model=str(payload.get("model") or self.model or ""),
            latency_s=time.perf_counter() - t0,
        )

    def _redact(self, text: str) -> str:
        """Upstreams may echo the key back (or a masked form of it): never pass it on."""
        return redact(text, [self._secret])


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])[:500]
    return str(body)[:500]
