"""Backends: the one seam between Ponder and a model. See ``base.Backend``."""

from ponder.backends.base import Backend, Capabilities, estimate_tokens
from ponder.backends.fake import FakeBackend
from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.backends.reward import RewardModelBackend

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
        from ponder.backends.local import LocalBackend

        return LocalBackend
    raise AttributeError(name)
