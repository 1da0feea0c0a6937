"""benchmarks/ssa_eval.py on a hand-made collection against a real loopback OpenAI server.

The server answers ``\\boxed{4}`` (or, for question d, no answer at all; for question f, a 400),
so the test checks the request SSA.request builds, the grading, the majority fallback, the paired
numbers, resuming (done ids skipped, a torn last line cut) and the summaries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.ssa_eval import PER_QUESTION, main, summarize_all
from ponder.aggregator.ssa import SSA
from ponder.behaviour.records import (
    DatasetInfo,
    Manifest,
    ModelInfo,
    QuestionRecord,
    SampleRecord,
)
from ponder.learning.ssa.data import candidate_outcomes
from ponder.protocol.actions import Task
from tests.unit.loopback import Handler, Reply, Server

# id: (gold, answers of the 4 collected samples); the benchmark uses the first k=3
QUESTIONS: dict[str, tuple[str, list[str | None]]] = {
    "a": ("4", ["5", "5", "4", "4"]),  # majority wrong, SSA (4) right: won
    "b": ("4", ["4", "4", "7", "7"]),  # both right
    "c": ("9", ["9", "9", "1", "4"]),  # majority right, SSA (4) wrong: lost
    "d": ("2", ["2", "2", None, "3"]),  # SSA states no answer: majority (2) decides
    "e": ("3", [None, None, None, "3"]),  # nothing answered: no call, wrong
    "f": ("1", ["1", "1", "1", "1"]),  # the call fails (400): not recorded
}


def _rec(qid: str) -> QuestionRecord:
    gold, answers = QUESTIONS[qid]
    samples = [
        SampleRecord(
            seed=i,
            text=f"reasoning {qid}{i} " * 60 + (f"so \\boxed{{{a}}}" if a else "no idea"),
            answer=a,
            correct=a == gold,
            finish_reason="stop",
            tokens=100 + i,
        )
        for i, a in enumerate(answers)
    ]
    return QuestionRecord(id=qid, question=f"What is question {qid}?", gold=gold, samples=samples)


def _collection(d: Path) -> Path:
    d.mkdir()
    man = Manifest(
        model=ModelInfo(name="sampler", sha256="s"),
        templates={},
        settings={"k": 4},
        seed=0,
        dataset=DatasetInfo(path="d.jsonl", sha256="x", rows=len(QUESTIONS)),
    )
    (d / "manifest.json").write_text(man.model_dump_json())
    (d / "records.jsonl").write_text("".join(_rec(q).model_dump_json() + "\n" for q in QUESTIONS))
    return d


def _reply(body: dict[str, Any], path: str, n: int) -> Reply:
    user = body["messages"][-1]["content"]
    if "question f?" in user:
        return 400, {"error": {"message": "the request exceeds the available context size"}}
    text = "I cannot tell." if "question d?" in user else "Weighing them: \\boxed{4}"
    return 200, {
        "id": f"c{n}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010},
    }


def _chain(tmp: Path, url: str) -> Path:
    be = {"kind": "openai", "base_url": f"{url}/v1", "model": "agg"}
    chain = {
        "backend": be,
        "roles": {"aggregator": be},
        "strategy": {"name": "sample", "k": 3, "aggregator": {"name": "ssa"}},
        "retry": {"max_attempts": 1},
    }
    path = tmp / "chain.json"
    path.write_text(json.dumps(chain))
    return path


def _args(col: Path, chain: Path, out: Path, *extra: str) -> list[str]:
    return ["--test", str(col), "-c", str(chain), "--label", "arm", "--out", str(out)] + [
        "-k",
        "3",
        "--concurrency",
        "2",
        "--quiet",
        *extra,
    ]


def _users(srv: Server) -> list[str]:
    return [b["messages"][-1]["content"] for b in srv.seen]


def test_ssa_eval_end_to_end(tmp_path: Path, rm: Callable[[Handler], Server]) -> None:
    srv = rm(_reply)
    col = _collection(tmp_path / "col")
    chain = _chain(tmp_path, srv.url)
    out = tmp_path / "out"

    # first run: questions a-c only
    assert main(_args(col, chain, out, "--first", "3")) == 0
    assert len(srv.seen) == 3
    for qid in "abc":  # the exact SSA request, from the first k samples
        req, _ = SSA().request(Task(_rec(qid).question), candidate_outcomes(_rec(qid), [0, 1, 2]))
        [body] = [b for b in srv.seen if f"question {qid}?" in b["messages"][-1]["content"]]
        assert body["messages"][-1]["content"] == req.messages[1]["content"]  # type: ignore[index]
        assert body["messages"][0]["content"] == req.messages[0]["content"]  # type: ignore[index]
        assert body["temperature"] == 0.0
        assert (body.get("max_completion_tokens") or body.get("max_tokens")) == 512
    assert "reasoning a3" not in "".join(_users(srv))  # the 4th sample is never shown

    # a crash left a torn line; the rerun cuts it, skips a-c and does d, e (no call), f (fails)
    pq = out / "arm" / PER_QUESTION
    with pq.open("a") as f:
        f.write('{"id": "d", "corr')
    assert main(_args(col, chain, out)) == 1  # f's call failed
    users = _users(srv)
    assert len(users) == 5 and sum("question d?" in u for u in users) == 1
    assert not any("question e?" in u for u in users)
    lines = pq.read_text().splitlines()
    rows = {r["id"]: r for r in map(json.loads, lines)}
    assert len(lines) == 5 and set(rows) == set("abcde")  # f not written, the torn line cut
    assert rows["a"]["answer"] == "4" and rows["a"]["correct"] and not rows["a"]["majority_correct"]
    assert rows["d"]["fallback"] == "no_answer" and rows["d"]["answer"] == "2"
    assert rows["e"]["fallback"] == "no_candidates" and not rows["e"]["correct"]
    assert rows["b"]["shown"] == [0, 1, 2] and rows["d"]["shown"] == [0, 1]
    assert rows["a"]["prompt_tokens"] == 1000 and rows["a"]["completion_tokens"] == 10

    s = json.loads((out / "arm" / "summary.json").read_text())
    assert s["n"] == 5 and s["k"] == 3 and s["sampler"] == "sampler"
    assert s["ssa"]["correct"] == 3  # a, b, d
    assert s["majority"]["correct"] == 3  # b, c, d
    assert s["oracle"]["correct"] == 4  # a, b, c, d
    assert s["vs_majority"] == {"won": 1, "lost": 1, "p_value": 1.0}
    assert s["fallback"] == {"no_answer": 1, "no_candidates": 1}
    assert s["aggregator_tokens"] == {"prompt_tokens": 4000, "completion_tokens": 40}
    assert 0.0 < s["ssa"]["ci95"][0] < 0.6 < s["ssa"]["ci95"][1] < 1.0
    assert "60.0% [" in (out / "arm" / "summary.md").read_text()

    # rerunning with other SSA settings into the same arm is refused
    assert main(_args(col, chain, out, "--max-tokens", "64")) == 2
    assert len(srv.seen) == 5  # refused before any call

    # the combined table: a second arm (a copy) and a replay method, on the common questions
    (out / "copy").mkdir()
    (out / "copy" / "settings.json").write_text((out / "arm" / "settings.json").read_text())
    some = [line for line in pq.read_text().splitlines() if json.loads(line)["id"] in "abcd"]
    (out / "copy" / PER_QUESTION).write_text("".join(line + "\n" for line in some))
    replay = tmp_path / "replay.jsonl"
    replay.write_text(
        "".join(
            json.dumps({"id": q, "majority@8": True, "learned (live features)": q == "a"}) + "\n"
            for q in "abcde"
        )
    )
    md, data = summarize_all(out, replay)
    assert data["common_questions"] == 4 and data["first"] == "arm"
    labels = [a["label"] for a in data["arms"]]
    assert labels == ["arm", "copy", "replay: learned (live features)"]
    learned = data["arms"][2]
    assert learned["ssa"]["correct"] == 1 and learned["vs_first"]["lost"] == 2  # b, d
    assert learned["vs_majority"]["lost"] == 3  # the replay's own majority@8: b, c, d
    assert "| arm |" in md and "| copy |" in md
    assert main(["--summarize-only", "--out", str(out), "--replay", str(replay)]) == 0
    assert (out / "summary.md").is_file() and (out / "summary.json").is_file()


def test_ssa_eval_shows_a_probe_free_judges_scores(
    tmp_path: Path, rm: Callable[[Handler], Server]
) -> None:
    from tests.unit.drr_helpers import agree_dm, manifest
    from tests.unit.test_drr_probe_free import free_dm

    srv = rm(_reply)
    col = _collection(tmp_path / "col")
    chain = _chain(tmp_path, srv.url)
    out = tmp_path / "out"
    free = str(free_dm().save(tmp_path / "free.json"))
    assert main(_args(col, chain, out, "--first", "4", "--judge-scores", free)) == 0
    rows = {
        r["id"]: r for r in map(json.loads, (out / "arm" / PER_QUESTION).read_text().splitlines())
    }
    # P(correct) rises with the answer's presence: 0.7311 answered, 0.2689 not (question d's 3rd)
    assert rows["a"]["judge_p"] == [0.7311] * 3
    assert rows["d"]["judge_p"] == [0.7311, 0.7311, 0.2689]
    [d_user] = [u for u in _users(srv) if "question d?" in u]
    assert d_user.count("A trained judge's estimate that candidate") == 2  # shown: 2 answered
    assert "is right: 0.73" in d_user
    settings = json.loads((out / "arm" / "settings.json").read_text())
    assert settings["judge"]["dm"] == free and settings["ssa"]["judge_scores"] is True
    # the same arm without the judge is refused; a probed DM is refused before any call
    seen = len(srv.seen)
    assert main(_args(col, chain, out, "--first", "4")) == 2
    probed = str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "p.json"))
    assert main(_args(col, chain, tmp_path / "o2", "--judge-scores", probed)) == 2
    assert len(srv.seen) == seen
