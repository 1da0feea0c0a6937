"""``ponder serve``: an OpenAI-compatible proxy that puts strategy chains in front of any endpoint.

Use ``create_app`` with any ASGI server, ``ServerThread`` to run it inside a Python process, or the
``ponder serve`` command. See docs/serve.md.
"""

from ponder.serve.app import create_app
from ponder.serve.config import ChainSpec, ServeConfig, ServeLimits
from ponder.serve.runner import ServerThread

__all__ = ["ChainSpec", "ServeConfig", "ServeLimits", "ServerThread", "create_app"]
