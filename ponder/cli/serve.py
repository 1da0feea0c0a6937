"""``ponder serve``: run the OpenAI-compatible proxy (see docs/serve.md)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ponder.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve strategy chains behind an OpenAI-compatible API")
    p.add_argument("-c", "--config", help="serve config file (.yaml/.yml/.json)")
    p.add_argument("--host", help="listen address (default 127.0.0.1; others need allow_remote)")
    p.add_argument("--port", type=int, help="listen port (default 8000)")
    p.add_argument(
        "--upstream-url", help="OpenAI-compatible upstream base URL (default: the local model)"
    )
    p.add_argument("--upstream-model", help="default model name at --upstream-url")
    p.add_argument(
        "--upstream-key-env", help="env var holding the upstream API key (default OPENAI_API_KEY)"
    )
    p.add_argument("--api-key-env", help="env var holding the key clients must send to this proxy")
    p.add_argument("--trace-dir", help="write one JSONL trace per chain run into this directory")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--ray-serve",
        action="store_true",
        help="run as a Ray Serve deployment (needs ponder[ray]); see docs/scale.md",
    )
    p.add_argument(
        "--replicas", type=int, help="with --ray-serve: replicas of the proxy (default 1)"
    )
    p.add_argument(
        "--ray-address",
        help="with --ray-serve: the Ray cluster to join (auto, ray://host:port; default "
        "$RAY_ADDRESS, else a local Ray)",
    )
    p.set_defaults(handler=handle)


def build_config(args: argparse.Namespace) -> Any:
    from ponder.serve.config import ServeConfig

    cfg = ServeConfig.load(args.config) if args.config else ServeConfig.from_dict({})
    data = cfg.model_dump(exclude={"upstream", "chains"})
    data["chains"] = cfg.chains
    data["upstream"] = cfg.upstream
    if args.upstream_url:
        up: dict[str, Any] = {
            "kind": "openai",
            "base_url": args.upstream_url,
            "model": args.upstream_model or "default",
        }
        if args.upstream_key_env:
            up["api_key_env"] = args.upstream_key_env
        data["upstream"] = up
    elif args.upstream_model or args.upstream_key_env:
        raise ConfigError("--upstream-model", "needs --upstream-url")
    for flag, key in (
        ("host", "host"),
        ("port", "port"),
        ("api_key_env", "api_key_env"),
        ("trace_dir", "trace_dir"),
    ):
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    return ServeConfig.from_dict(data)


def handle(args: argparse.Namespace) -> int:
    from ponder.serve.runner import serve

    ray_serve = getattr(args, "ray_serve", False)
    for flag in ("replicas", "ray_address"):
        if getattr(args, flag, None) is not None and not ray_serve:
            raise ConfigError(f"--{flag.replace('_', '-')}", "needs --ray-serve")
    if args.replicas is not None and args.replicas < 1:
        raise ConfigError("--replicas", f"must be at least 1, got {args.replicas}")
    if ray_serve:
        from ponder.serve.ray_serve import ray_serve as ray_serve_module

        ray_serve_module()  # without the extra: which one to install, before anything starts
    cfg = build_config(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if ray_serve:  # says where it listens once the replicas are deployed
        from ponder.serve.ray_serve import run

        run(cfg, replicas=args.replicas or 1, address=args.ray_address)
        return 0
    print(
        f"ponder serve: http://{cfg.host}:{cfg.port}/v1  chains: "
        + ", ".join("ponder:" + c for c in cfg.chain_names()),
        flush=True,
    )
    serve(cfg, log_level=args.log_level)
    return 0
