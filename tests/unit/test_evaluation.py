import json
from pathlib import Path

import pytest

from ponder import FakeBackend
from ponder.cli import main
from ponder.config import ChainConfig
from ponder.errors import InputError
from ponder.evaluation import EvalJob, evaluate, format_table, load_items, select, summarize
from ponder.evaluation.records import RecordWriter, read_records

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_gsm8k_and_math500_formats_are_detected():
    gsm = load_items(DATA / "gsm8k" / "test.jsonl")
    assert gsm[0].gold == "18" and gsm[0].question.startswith("Janet")
    math = load_items(DATA / "math500" / "test.jsonl")
    assert math[0].id == "test/precalculus/807.json"
    assert math[0].gold.startswith("\\left( 3")


def test_generic_jsonl_needs_named_fields(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"q": "What is 2+2?", "a": "4"}) + "\n")
    with pytest.raises(InputError, match="question-field"):
        load_items(f)
    [item] = load_items(f, question_field="q", answer_field="a")
    assert (item.question, item.gold, item.id) == ("What is 2+2?", "4", "0")


def test_select_first_or_seeded_random():
    items = load_items(DATA / "gsm8k" / "test.jsonl")
    assert [i.id for i in select(items, 3)] == ["0", "1", "2"]
    a, b = select(items, 5, seed=7), select(items, 5, seed=7)
    assert a == b and a != select(items, 5)


def _chain() -> ChainConfig:
    return ChainConfig.from_dict({"strategy": {"name": "sample", "k": 3, "seed": 0}})


def _backend() -> FakeBackend:
    # sample 0 is right for every question, the others wrong: majority wrong, oracle right
    return FakeBackend(lambda req, i: "\\boxed{18}" if i == 0 else "\\boxed{5}")


async def test_runner_writes_records_summary_and_resumes(tmp_path):
    items = select(load_items(DATA / "gsm8k" / "test.jsonl"), 2)
    backend = _backend()
    rows = await evaluate(
        [EvalJob("maj3", _chain())], items, tmp_path, progress=False, backends={"default": backend}
    )
    recs = read_records(tmp_path / "maj3.jsonl")
    assert [r["id"] for r in sorted(recs, key=lambda r: r["id"])] == ["0", "1"]
    first = next(r for r in recs if r["id"] == "0")
    assert first["gold"] == "18" and first["prediction"] == "5" and first["correct"] is False
    assert first["oracle"] is True and first["samples"] == ["18", "5", "5"]
    assert first["calls"] == 1 and first["completion_tokens"] == 3 and first["trace_id"]
    assert rows[0]["accuracy"] == 0.0 and rows[0]["oracle_pass_at_k"] == 0.5
    assert json.loads((tmp_path / "summary.json").read_text())[0]["n"] == 2

    seen = len(backend.requests)
    more = select(load_items(DATA / "gsm8k" / "test.jsonl"), 3)
    rows2 = await evaluate(
        [EvalJob("maj3", _chain())], more, tmp_path, progress=False, backends={"default": backend}
    )
    assert len(backend.requests) == seen + 1  # only the new question ran
    assert rows2[0]["n"] == 3 and rows2[0]["ran_now"] == 1


def test_torn_last_line_is_dropped_and_writing_continues(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"id": "0"}\n{"id": "1", "trunc')
    assert [r["id"] for r in read_records(f)] == ["0"]
    w = RecordWriter(f)
    w.write({"id": "2"})
    w.close()
    assert [r["id"] for r in read_records(f)] == ["0", "2"]


def test_summary_table_and_plot(tmp_path):
    recs = [
        {
            "correct": True,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "calls": 1,
            "wall_time_s": 1.0,
        },
        {
            "correct": False,
            "prompt_tokens": 20,
            "completion_tokens": 5,
            "total_tokens": 25,
            "calls": 1,
            "wall_time_s": 3.0,
        },
    ]
    row = summarize("greedy", recs)
    assert row["accuracy"] == 0.5 and row["mean_total_tokens"] == 20
    table = format_table([row])
    assert "| greedy | 2 | 50.0% |" in table
    pytest.importorskip("matplotlib")
    from ponder.evaluation.plot import plot_scaling

    other = {**row, "config": "maj8", "mean_total_tokens": 160, "accuracy": 0.7}
    png = plot_scaling([row, other], tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front_keeps_only_configs_no_cheaper_one_beats():
    from ponder.evaluation.plot import pareto_front

    rows = [
        {"config": "ssa", "mean_total_tokens": 5000, "accuracy": 0.40},
        {"config": "greedy", "mean_total_tokens": 400, "accuracy": 0.20},
        {"config": "maj", "mean_total_tokens": 3000, "accuracy": 0.50},
        {"config": "adaptive", "mean_total_tokens": 2000, "accuracy": 0.50},
        {"config": "select", "mean_total_tokens": 4500, "accuracy": 0.25},
    ]
    assert [r["config"] for r in pareto_front(rows)] == ["greedy", "adaptive"]


def test_cli_offline_aggregation_on_math_cot_100(tmp_path, capsys):
    rc = main(
        [
            "eval",
            "--offline",
            str(DATA / "aggregation" / "math_cot_100.jsonl"),
            "-n",
            "20",
            "--aggregator",
            "majority",
            "--aggregator",
            "best_of_n",
            "--aggregator",
            'w={"name": "weighted", "by": "score"}',
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| majority | 20 |" in out and "| w | 20 |" in out
    rows = {r["config"]: r for r in json.loads((tmp_path / "summary.json").read_text())}
    assert rows["majority"]["mean_samples"] == 8
    assert rows["majority"]["accuracy"] <= rows["majority"]["oracle_pass_at_k"]
    assert (tmp_path / "scaling.png").is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["eval", "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    rc = main(
        [
            "eval",
            "--offline",
            str(DATA / "aggregation" / "math_cot_100.jsonl"),
            "--aggregator",
            "mojority",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert "valid choices" in capsys.readouterr().err
