"""Backends: the one seam between Ponder and a model. See ``base.Backend``."""

from ponder.orchestrator.backends.base import Backend, Capabilities, estimate_tokens
from ponder.orchestrator.backends.fake import FakeBackend
from ponder.orchestrator.backends.openai_compat import OpenAICompatibleBackend
from ponder.orchestrator.backends.reward import RewardModelBackend

__all__ = [
    "Backend",
    "Capabilities",
    "FakeBackend",
    "OpenAICompatibleBackend",
    "RewardModelBackend",
    "estimate_tokens",
]


def __getattr__(name: str) -> object:
    if name == "LocalBackend":  # lazy: keeps subprocess/build machinery out of plain imports
        from ponder.orchestrator.backends.local import LocalBackend

        return LocalBackend
    raise AttributeError(name)
