"""``--shard i/n`` and ``ponder merge`` (no Ray): the split is deterministic and complete, merged
shards equal one unsharded run, shards of different manifests are refused, bad input is said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.errors import ConfigError, InputError
from ponder.scale.merge import merge
from ponder.scale.shard import Shard, write_shard_file


@pytest.mark.parametrize(
    ("text", "says"),
    [("3/2", "there is no shard 3 of 2"), ("2/2", "i must be 0..1"), ("a/b", "give i/n"),
     ("1", "give i/n"), ("0/0", "give i/n"), ("-1/4", "no shard -1")],
)  # fmt: skip
def test_a_bad_shard_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        Shard.parse(text)


def test_shards_split_ids_deterministically_and_completely() -> None:
    ids = [f"q{i}" for i in range(200)]
    parts = [Shard.parse(f"{i}/4").select(ids, str) for i in range(4)]
    assert sorted(x for p in parts for x in p) == sorted(ids)  # each id in exactly one shard
    assert all(20 < len(p) < 80 for p in parts)
    assert Shard(1, 4).select(list(reversed(ids)), str) == list(reversed(parts[1]))  # by id only


def test_cli_refuses_shard_3_of_2_before_reading_anything(capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--data", "missing.jsonl", "--shard", "3/2"]) == 2
    assert "--shard 3/2: there is no shard 3 of 2" in capsys.readouterr().err


def _collect_shard(root: Path, i: int, n: int, ids: list[str], model: str = "m1") -> Path:
    out = root / f"s{i}"
    out.mkdir(parents=True)
    manifest = {"model": {"name": model}, "settings": {"k": 2}, "created": f"t{i}"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    mine = Shard(i, n).select(ids, str)
    (out / "records.jsonl").write_text("".join(json.dumps({"id": x}) + "\n" for x in mine))
    write_shard_file(out, "collect", Shard(i, n), manifest)
    return out


def test_merged_collect_shards_hold_every_record_once(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(30)]
    shards = [_collect_shard(tmp_path, i, 3, ids) for i in range(3)]
    report = merge(tmp_path / "all", [shards[2], shards[0], shards[1]])
    got = [json.loads(x)["id"] for x in (tmp_path / "all/records.jsonl").read_text().splitlines()]
    assert sorted(got) == sorted(ids) and report.records == 30 and report.missing == []
    assert json.loads((tmp_path / "all/manifest.json").read_text())["model"] == {"name": "m1"}


def test_a_missing_shard_is_reported_not_refused(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(30)]
    shards = [_collect_shard(tmp_path, i, 3, ids) for i in (0, 2)]
    report = merge(tmp_path / "all", shards)
    assert report.missing == [1] and "MISSING shards 1" in report.line()


def test_merging_refuses_shards_from_different_manifests(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(10)]
    a = _collect_shard(tmp_path / "a", 0, 2, ids, model="m1")
    b = _collect_shard(tmp_path / "b", 1, 2, ids, model="m2")
    with pytest.raises(ConfigError, match="another manifest.*differs in: model"):
        merge(tmp_path / "all", [a, b])


def test_merging_refuses_a_shard_given_twice_and_other_counts(tmp_path: Path) -> None:
    ids = [f"q{i}" for i in range(10)]
    a = _collect_shard(tmp_path / "a", 0, 2, ids)
    b = _collect_shard(tmp_path / "b", 0, 2, ids)
    with pytest.raises(InputError, match="shard 0 is given twice"):
        merge(tmp_path / "all", [a, b])
    c = _collect_shard(tmp_path / "c", 1, 3, ids)
    with pytest.raises(ConfigError, match="shard 1/3"):
        merge(tmp_path / "all", [a, c])


def test_an_output_that_is_no_shard_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is not a shard's output"):
        merge(tmp_path / "all", [tmp_path / "plain"])


def test_a_rerun_into_a_shard_dir_must_be_the_same_shard(tmp_path: Path) -> None:
    write_shard_file(tmp_path, "collect", Shard(0, 2), {"a": 1})
    write_shard_file(tmp_path, "collect", Shard(0, 2), {"a": 1, "created": "later"})  # resume
    with pytest.raises(ConfigError, match="use a new --out for shard 1/2"):
        write_shard_file(tmp_path, "collect", Shard(1, 2), {"a": 1})


def test_merged_eval_shards_recompute_the_summary(tmp_path: Path) -> None:
    ids = [str(i) for i in range(12)]
    manifest = {"configs": {"a": {}, "b": {}}, "baseline": None}
    shards = []
    for i in range(2):
        out = tmp_path / f"e{i}"
        out.mkdir()
        for name in ("a", "b"):
            recs = [
                {"config": name, "id": x, "correct": (int(x) % 2 == 0) or name == "b",
                 "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "calls": 1,
                 "wall_time_s": 0.1}
                for x in Shard(i, 2).select(ids, str)
            ]  # fmt: skip
            (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        write_shard_file(out, "eval", Shard(i, 2), manifest)
        shards.append(out)
    merge(tmp_path / "all", shards)
    rows = json.loads((tmp_path / "all/summary.json").read_text())
    assert [r["config"] for r in rows] == ["a", "b"] and rows[0]["n"] == 12
    assert rows[1]["vs_baseline"]["won"] == 6
    assert (tmp_path / "all/summary.md").is_file()


def test_merged_rft_shards(tmp_path: Path) -> None:
    ids = [f"q{i}:abc" for i in range(8)]
    manifest = {"format": "ponder.ssa-rft/1", "settings": {"n": 4}}
    shards = []
    for i in range(2):
        out = tmp_path / f"t{i}.jsonl"
        mine = Shard(i, 2).select(ids, str)
        out.write_text("".join(json.dumps({"id": x}) + "\n" for x in mine))
        out.with_name(out.name + ".manifest.json").write_text(json.dumps(manifest))
        write_shard_file(out, "rft", Shard(i, 2), manifest)
        shards.append(out)
    report = merge(tmp_path / "targets.jsonl", shards)
    assert report.kind == "rft" and report.records == 8
    assert (tmp_path / "targets.jsonl.manifest.json").is_file()
