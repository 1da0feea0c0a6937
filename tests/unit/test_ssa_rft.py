"""SSA rejection-sampling targets: grading, the candidate fallback, resume, and the prompt mask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.aggregator.ssa import SSA
from ponder.answers import extract_answer
from ponder.backends.fake import FakeBackend
from ponder.behaviour.records import ModelInfo
from ponder.cli import main
from ponder.errors import ConfigError
from ponder.learning.ssa.data import SSAExample, write_ssa_examples
from ponder.learning.ssa.rft import parse_candidates, select_targets
from ponder.learning.ssa.rft_run import (
    RFTSettings,
    build_rft_manifest,
    example_id,
    read_rft_rows,
    read_ssa_examples,
    run_rft,
    summarize_rft,
)
from ponder.learning.ssa.sft import IGNORE, Pair, encode, training_pairs
from ponder.orchestrator.session import Session
from ponder.protocol.actions import Outcome, Task
from ponder.protocol.requests import GenerationRequest


def _example(qid: str, answers: list[str | None], gold: str, max_tokens: int = 384) -> SSAExample:
    outs = [
        Outcome(
            answer=a,
            text=f"Sample {i} works it out for {qid}.\nStep one.\n\\boxed{{{a}}}" if a else "?",
        )
        for i, a in enumerate(answers)
    ]
    req, _ = SSA(max_candidate_tokens=max_tokens).request(Task(f"question {qid}?"), outs)
    return SSAExample(
        qid, "teaching", [dict(m) for m in req.messages or ()], gold, answers, answers[0]
    )


def _outcomes(texts: list[str]) -> list[Outcome]:
    return [Outcome(answer=extract_answer(t), text=t, data={"tokens": 7}) for t in texts]


def test_candidates_read_back_from_the_inference_prompt() -> None:
    ex = _example("a", ["5", None, "4", "4"], gold="4")
    shown = parse_candidates(ex.messages[1]["content"])
    assert [(c.number, c.answer) for c in shown] == [(1, "5"), (2, "4"), (3, "4")]
    assert shown[1].reasoning.startswith("Sample 2 works it out for a.")
    assert not any(c.truncated for c in shown)
    cut = parse_candidates(_example("b", ["4"], "4", max_tokens=3).messages[1]["content"])
    assert cut[0].truncated


def test_correct_samples_kept_wrong_dropped_deduped_and_capped() -> None:
    ex = _example("a", ["5", "4"], gold="4")
    texts = [
        "so \\boxed{5}",
        "so \\boxed{4}",
        " so \\boxed{4} ",
        "also \\boxed{4.0}",
        "x \\boxed{4}",
    ]
    sel = select_targets(_outcomes(texts), ex.gold, ex.messages[1]["content"], cap=2)
    assert [t.text for t in sel.targets] == ["so \\boxed{4}", "also \\boxed{4.0}"]
    assert {t.source for t in sel.targets} == {"aggregator"}
    assert [g["correct"] for g in sel.graded] == [False, True, True, True, True]
    assert sel.correct_samples == 4


def test_fallback_only_when_no_sample_is_right() -> None:
    ex = _example("a", ["5", "4", "5", "4"], gold="4")
    user = ex.messages[1]["content"]
    right = select_targets(_outcomes(["\\boxed{4}"]), ex.gold, user)
    assert [t.source for t in right.targets] == ["aggregator"]
    wrong = select_targets(_outcomes(["\\boxed{5}", "no answer"]), ex.gold, user)
    [target] = wrong.targets
    assert target.source == "candidate" and target.answer == "4"
    assert target.text.startswith("Candidates 2, 4 agree on 4")
    assert "Sample 1 works it out for a." in target.text
    assert target.text.rstrip().endswith("\\boxed{4}.")
    assert select_targets(_outcomes(["\\boxed{5}"]), ex.gold, user, fallback="none").targets == []
    none_right = _example("b", ["5", "6"], gold="4")
    assert (
        select_targets(_outcomes(["\\boxed{5}"]), "4", none_right.messages[1]["content"]).targets
        == []
    )
    truncated = _example("c", ["4", "5"], gold="4", max_tokens=3)
    assert (
        select_targets(_outcomes(["\\boxed{5}"]), "4", truncated.messages[1]["content"]).targets
        == []
    )


def test_sampler_sends_the_example_prompt_to_the_aggregator_role() -> None:
    ex = _example("a", ["5", "4"], gold="4")
    flow = RFTSettings(n=4, temperature=0.8).sampler(ex).flow(Task("q"))
    action = next(flow)
    [req] = action.requests
    assert isinstance(req, GenerationRequest)
    assert list(req.messages or ()) == ex.messages
    assert req.role == "aggregator" and req.purpose == "aggregate"
    assert (req.params.n, req.params.temperature, req.params.max_tokens) == (4, 0.8, 512)


def _responder(calls: list[str]) -> Any:
    """Question a: one right sample of four; b: none right (candidate fallback); c: all right."""

    def answer(request: GenerationRequest, i: int) -> str:
        user = str((request.messages or ())[-1]["content"])
        qid = user.split("question ", 1)[1][0]
        calls.append(qid)
        if qid == "a":
            return "the candidates are wrong \\boxed{4}" if i == 0 else f"\\boxed{{{i}0}}"
        if qid == "b":
            return "\\boxed{5}"
        return f"reasoning {i % 2} \\boxed{{4}}"

    return answer


def _data(tmp: Path) -> Path:
    examples = [
        _example("a", ["5", "4"], "4"),
        _example("b", ["5", "4", "4"], "4"),
        _example("c", ["4", "4"], "4"),
    ]
    return write_ssa_examples(examples, {"format": "ponder.ssa-data/1", "k": 2}, tmp / "d.jsonl")


async def _run(data: Path, out: Path, calls: list[str], **kw: Any) -> Any:
    examples, info = read_ssa_examples(data)
    settings = RFTSettings(**kw)
    man = build_rft_manifest(data, info, ModelInfo(name="agg", sha256="s"), settings)
    async with Session({"default": FakeBackend(_responder(calls))}) as session:
        return await run_rft(examples, out, session, settings, man, progress=False)


async def test_rft_rows_targets_and_summary(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "rft.jsonl"
    calls: list[str] = []
    summary = await _run(data, out, calls)
    assert summary.processed == 3 and not summary.failed
    assert sorted(calls) == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    rows = {r["question_id"]: r for r in read_rft_rows(out)}
    assert [t["source"] for t in rows["a"]["targets"]] == ["aggregator"]
    assert rows["a"]["targets"][0]["text"] == "the candidates are wrong \\boxed{4}"
    assert [t["source"] for t in rows["b"]["targets"]] == ["candidate"]
    assert len(rows["c"]["targets"]) == 2  # four right samples, two distinct texts, cap 2
    assert rows["a"]["messages"] == read_ssa_examples(data)[0][0].messages
    s = summarize_rft(out)
    assert s["examples"] == 3 and s["with_correct_sample"] == 2
    assert s["targets"] == {"aggregator": 3, "candidate": 1}
    man = json.loads((tmp_path / "rft.jsonl.manifest.json").read_text())
    assert man["data"]["manifest"]["k"] == 2 and man["aggregator"]["name"] == "agg"
    assert man["settings"]["n"] == 4 and man["settings"]["fallback"] == "candidate"


async def test_resume_skips_done_ids_and_redoes_a_torn_tail(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "rft.jsonl"
    await _run(data, out, [])
    again: list[str] = []
    summary = await _run(data, out, again)
    assert again == [] and summary.done_before == 3 and summary.processed == 0
    lines = out.read_text().splitlines(keepends=True)
    torn_id = json.loads(lines[-1])["question_id"]
    out.write_text("".join(lines[:-1]) + lines[-1][:40])  # a crash mid-line
    redo: list[str] = []
    summary = await _run(data, out, redo)
    assert set(redo) == {torn_id} and summary.processed == 1
    rows = read_rft_rows(out)
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    assert out.read_text().endswith("\n")


async def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "rft.jsonl"
    await _run(data, out, [])
    with pytest.raises(ConfigError, match="temperature") as err:
        await _run(data, out, [], temperature=0.5)
    assert err.value.field == "out"


def test_example_ids_are_stable_and_distinct() -> None:
    a, b = _example("q", ["5", "4"], "4"), _example("q", ["4", "5"], "4")
    assert example_id(a) == example_id(_example("q", ["5", "4"], "4"))
    assert example_id(a) != example_id(b) and example_id(a).startswith("q:")


class CharTokenizer:
    """A stand-in with a chat template shaped like Qwen's: one token per character, and one for
    each special marker."""

    eos_token_id = 1
    SPECIAL = {"<s>": 0, "<e>": 1}

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
    ) -> str:
        text = "".join(f"<s>{m['role']}\n{m['content']}<e>\n" for m in messages)
        return text + ("<s>assistant\n" if add_generation_prompt else "")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids, i = [], 0
        while i < len(text):
            for mark, tid in self.SPECIAL.items():
                if text.startswith(mark, i):
                    ids.append(tid)
                    i += len(mark)
                    break
            else:
                ids.append(ord(text[i]) + 10)
                i += 1
        return {"input_ids": ids}


def test_loss_mask_covers_only_the_assistant_target_and_end_token() -> None:
    tok = CharTokenizer()
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "u"}]
    enc = encode(tok, Pair(msgs, "ok", "aggregator", "x"), max_length=100)
    assert enc is not None
    prompt = tok(tok.apply_chat_template(msgs, add_generation_prompt=True))["input_ids"]
    assert enc.input_ids[: len(prompt)] == prompt
    assert enc.labels[: len(prompt)] == [IGNORE] * len(prompt)
    assert enc.labels[len(prompt) :] == [ord("o") + 10, ord("k") + 10, 1]  # target, then <e>
    assert len(enc.input_ids) == len(prompt) + 3  # the template's newline after <e> is cut
    assert encode(tok, Pair(msgs, "ok", "aggregator", "x"), max_length=len(prompt) + 2) is None


def test_training_pairs_one_per_target() -> None:
    rows = [
        {
            "id": "a",
            "messages": [{"role": "user", "content": "q"}],
            "targets": [
                {"text": "t1", "source": "aggregator"},
                {"text": "t2", "source": "candidate"},
            ],
        },
        {"id": "b", "messages": [{"role": "user", "content": "q"}], "targets": []},
    ]
    pairs = training_pairs(rows)
    assert [(p.target, p.source, p.example_id) for p in pairs] == [
        ("t1", "aggregator", "a"),
        ("t2", "candidate", "a"),
    ]


def test_cli_samples_through_the_chain_backend(tmp_path: Path, rm: Any, capsys: Any) -> None:
    def chat(body: dict[str, Any], path: str, n: int) -> tuple[int, dict[str, Any]]:
        k = int(body.get("n") or 1)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": f"ok {i} \\boxed{{4}}"},
             "finish_reason": "stop"}
            for i in range(k)
        ]  # fmt: skip
        usage = {"prompt_tokens": 50 * k, "completion_tokens": 3 * k, "total_tokens": 53 * k}
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": choices, "usage": usage}  # fmt: skip

    server = rm(chat)
    chain = tmp_path / "chain.yaml"
    chain.write_text(f"backend: {{kind: openai, base_url: '{server.url}/v1', model: agg-m}}\n")
    data = _data(tmp_path)
    out = tmp_path / "rft.jsonl"
    args = ["ssa", "rft", "--data", str(data), "--out", str(out), "-c", str(chain), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 examples; 3 (100%) with ≥1 correct aggregator sample" in printed
    assert "targets: aggregator 6;" in printed  # two distinct right texts each (cap 2)
    man = json.loads((tmp_path / "rft.jsonl.manifest.json").read_text())
    assert man["aggregator"]["name"] == "agg-m"
    sent = [b for b in server.seen if b["_path"].endswith("/chat/completions")]
    assert sent and all(b["temperature"] == 0.8 and b["max_tokens"] == 512 for b in sent)
    assert sum(int(b.get("n") or 1) for b in sent) == 12
