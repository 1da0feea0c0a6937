"""Child-process entry point of the prebuilt runtime: llama.cpp's server from the xllamacpp wheel.

``python -P prebuilt_server.py -m MODEL --port 8080 -np 8 ...`` (a script: it imports only the
standard library and xllamacpp, never the ponder package) takes the subset of ``llama-server``
flags that ``LlamaServer`` passes, starts
``xllamacpp.Server`` (the same C++ HTTP server, in this process) and serves until it is
terminated. Not meant to be run by hand; ``LocalBackend`` starts it. Running it as a child keeps
the model's memory and threads out of the caller and makes it killable like the native binary.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="prebuilt_server", description=__doc__)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("-np", "--parallel", type=int, default=1)
    p.add_argument("-c", "--ctx-size", type=int, default=0)
    p.add_argument("-t", "--threads", type=int, default=-1)
    p.add_argument("--alias", default="local")
    p.add_argument("--no-repack", action="store_true")
    p.add_argument("--embeddings", action="store_true")
    p.add_argument("--pooling", choices=("none", "mean", "cls", "last", "rank"))
    p.add_argument("-b", "--batch-size", type=int)
    p.add_argument("-ub", "--ubatch-size", type=int)
    return p.parse_args(list(argv))


def build_params(args: argparse.Namespace) -> object:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_size
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.model_alias = {args.alias}
    params.no_extra_bufts = args.no_repack  # what llama-server's --no-repack sets
    if args.embeddings:  # an embedding server (ponder corpus hidden)
        params.embedding = True
    if args.pooling:
        params.pooling_type = xllamacpp.llama_pooling_type[
            f"LLAMA_POOLING_TYPE_{args.pooling.upper()}"
        ]
    if args.batch_size:
        params.n_batch = args.batch_size
    if args.ubatch_size:
        params.n_ubatch = args.ubatch_size
    return params


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import xllamacpp

    try:
        server = xllamacpp.Server(build_params(args))
    except Exception as exc:  # the extension raises plain exceptions; report and exit non-zero
        print(f"prebuilt_server: starting xllamacpp.Server failed: {exc}", file=sys.stderr)
        return 1
    print(f"prebuilt_server: listening on {server.listening_address}", file=sys.stderr, flush=True)
    while True:  # SIGTERM/SIGKILL end the process (default action); the server has no stop call
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
