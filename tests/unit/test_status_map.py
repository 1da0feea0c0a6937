"""One map from an upstream HTTP status to the error tree, used by every HTTP backend."""

from __future__ import annotations

import pytest

from ponder.errors import (
    AuthenticationFailed,
    BadRequestError,
    RateLimited,
    UpstreamServerError,
    error_for_status,
    retry_after_s,
)


@pytest.mark.parametrize(
    ("status", "kind", "retryable", "generated"),
    [
        (401, AuthenticationFailed, False, False),
        (403, AuthenticationFailed, False, False),
        (400, BadRequestError, False, False),
        (429, RateLimited, True, False),
        (500, UpstreamServerError, True, False),
        (502, UpstreamServerError, True, True),
        (504, UpstreamServerError, True, True),
    ],
)
def test_one_status_map(status, kind, retryable, generated) -> None:
    err = error_for_status(status, "the reward model at http://x", "why", url="http://x")
    assert type(err) is kind and err.retryable is retryable and err.generated is generated
    assert err.status == status and "the reward model at http://x" in str(err)


def test_retry_after_is_read_in_seconds_or_ms() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_s({}) is None


async def test_a_reward_model_429_carries_its_retry_after() -> None:
    import httpx

    from ponder.backends.reward import RewardModelBackend
    from ponder.protocol import RewardRequest

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "x"}})

    backend = RewardModelBackend(base_url="http://rm.test")
    backend._http = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    with pytest.raises(RateLimited) as exc:
        await backend.reward(RewardRequest(messages=({"role": "user", "content": "q"},)))
    await backend.aclose()
    assert exc.value.retry_after_s == 7.0  # the engine waits it (was dropped before)
