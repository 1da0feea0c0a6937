"""The hidden-state feature family: sidecar, projection, DM and learned aggregator, ablation.

A fake embedder stands in for llama.cpp's ``/v1/embeddings`` (the real model is exercised by
hand: docs/learning.md gives the command and its measured cost).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from ponder.behaviour.hidden import read_hidden, sidecar_chunks
from ponder.behaviour.records import read_collection
from ponder.errors import ConfigError, InputError
from ponder.learning.hidden import hidden_states

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "behaviour"


class FakeEmbedder:
    """Deterministic 16-dim vectors from the text; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def prompt(self, messages: object) -> str:
        return "<prompt>"

    def embed(self, text: str) -> list[float]:
        self.calls += 1
        digest = hashlib.sha256(text.encode()).digest()
        return [(b - 128) / 128 for b in digest[:16]]


def copy(split: str, tmp: Path) -> Path:
    dst = tmp / split
    shutil.copytree(FIXTURES / split, dst)
    return dst


def test_sidecar_is_resumable_and_deterministic(tmp_path: Path) -> None:
    d = copy("train", tmp_path)
    fake = FakeEmbedder()
    report = hidden_states(d, dims=4, first=3, embedder=fake, quiet=True)
    assert fake.calls == 24 and report.samples == 24 and report.fitted
    chunk = sidecar_chunks(d)[0].read_bytes()
    again = hidden_states(d, dims=4, first=3, embedder=fake, quiet=True)
    assert fake.calls == 24 and not again.fitted  # nothing re-embedded, projection reused
    assert sidecar_chunks(d)[0].read_bytes() == chunk  # byte-identical (fixed zip times)
    h = read_hidden(d)
    assert h is not None and len(h) == 24 and h.dims == 4
    _, records = read_collection(d)
    s = records[0].samples[2]
    assert h.vector(records[0].id, s.seed) is not None
    assert h.vector(records[5].id, 0) is None  # past --first
    grown = hidden_states(d, dims=4, first=4, embedder=fake, quiet=True)  # the corpus grew
    assert fake.calls == 32 and grown.stale and "--refit" in grown.line()
    assert not hidden_states(d, dims=4, first=4, refit=True, embedder=fake, quiet=True).stale


def test_a_test_collection_reuses_the_train_projection(tmp_path: Path) -> None:
    train, test = copy("train", tmp_path), copy("test", tmp_path)
    hidden_states(train, dims=4, first=3, embedder=FakeEmbedder(), quiet=True)
    rep = hidden_states(test, projection=train, embedder=FakeEmbedder(), quiet=True)
    assert not rep.fitted
    a, b = read_hidden(train), read_hidden(test)
    assert a is not None and b is not None and a.projection == b.projection
    with pytest.raises(InputError, match="needs at least 64 samples"):
        hidden_states(copy("test", tmp_path / "x"), dims=64, embedder=FakeEmbedder(), quiet=True)


def test_a_committed_sidecar_counts_as_done_without_the_raw_cache(tmp_path: Path) -> None:
    """A new machine: the sidecar came with git, hidden-raw.jsonl did not. Growing the test
    side embeds only the new questions and keeps the old vectors byte for byte."""
    train, test = copy("train", tmp_path), copy("test", tmp_path)
    hidden_states(train, dims=4, first=3, embedder=FakeEmbedder(), quiet=True)
    hidden_states(test, projection=train, first=2, embedder=FakeEmbedder(), quiet=True)
    before = read_hidden(test)
    assert before is not None and len(before) == 16
    (test / "hidden-raw.jsonl").unlink()
    fake = FakeEmbedder()
    grown = hidden_states(test, projection=train, embedder=fake, quiet=True)
    _, records = read_collection(test)
    new = sum(len(r.samples) for r in records[2:])
    assert new > 0
    assert fake.calls == new and grown.samples == 16 + new  # the first two were not re-embedded
    after = read_hidden(test)
    assert after is not None and len(after) == 16 + new
    assert all(after.vectors[k] == v for k, v in before.vectors.items())
    # another projection: the kept vectors do not fit it, so everything is embedded again
    other = copy("train", tmp_path / "other")
    hidden_states(other, dims=4, method="random", embedder=FakeEmbedder(), quiet=True)
    (test / "hidden-raw.jsonl").unlink()
    again = FakeEmbedder()
    hidden_states(test, projection=other, embedder=again, quiet=True)
    assert again.calls == 16 + new


@pytest.fixture(scope="module")
def hidden_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hidden")
    train, test = copy("train", tmp), copy("test", tmp)
    hidden_states(train, dims=4, embedder=FakeEmbedder(), quiet=True)
    hidden_states(test, projection=train, embedder=FakeEmbedder(), quiet=True)
    return train, test


def test_dm_with_the_hidden_family_falls_back_without_it(
    hidden_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from ponder.learning.drr.replay import judge_for, score_collection
    from ponder.learning.drr.train import train_dm
    from ponder.stopping.model import DM

    train, test = hidden_pair
    manifest, records = read_collection(train)
    dm = train_dm(manifest, records, families="all", hidden=read_hidden(train), sampling=False)
    assert dm.needs_hidden and dm.hidden is not None and dm.hidden.dims == 4
    assert dm.checkpoint.features[-5:] == ["has_hidden", "h0", "h1", "h2", "h3"]
    assert dm.checkpoint_fallback is not None and "h0" not in dm.checkpoint_fallback.features
    loaded = DM.load(dm.save(tmp_path / "dm.json"))  # the feature lists validate on load
    assert loaded.feature_families == ("votes", "confidence", "length", "hidden")
    tm, trec = read_collection(test)
    hid = read_hidden(test)
    scored = score_collection(loaded, trec, 320, hid)
    assert all(t.states[-1].state.hidden is not None for q in scored for t in q.traces)
    assert not judge_for(loaded, None).needs_hidden  # no sidecar: the fallback judges
    assert hid is not None
    hid.projection = "0" * 64
    with pytest.raises(InputError, match="projected with"):
        score_collection(loaded, trec, 320, hid)
    bare = loaded.model_copy(update={"checkpoint_fallback": None})
    with pytest.raises(ConfigError, match="hidden states"):
        bare.without_hidden()


def test_the_live_strategies_judge_with_the_fallback(
    hidden_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from ponder.config import ChainConfig
    from ponder.learning.drr.train import train_dm

    train, _ = hidden_pair
    manifest, records = read_collection(train)
    dm = train_dm(manifest, records, families="confidence,hidden", hidden=read_hidden(train))
    path = dm.save(tmp_path / "dm.json")
    chain = ChainConfig.from_dict({"strategy": {"name": "drr_sample", "dm": str(path), "k": 2}})
    judge = chain.strategy.judge_model()  # type: ignore[attr-defined]
    assert not judge.needs_hidden and judge.feature_families == ("confidence",)


def test_learned_aggregator_hidden_family_refuses_samples_without_it(
    hidden_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    from ponder.aggregator.learned import LearnedAggregator
    from ponder.behaviour.outcomes import sample_outcomes
    from ponder.learning.learned.train import train_artifact
    from ponder.protocol.actions import Task

    train, test = hidden_pair
    manifest, records = read_collection(train)
    with pytest.raises(InputError, match="corpus hidden"):
        train_artifact(manifest, records, "votes,hidden")
    art = train_artifact(manifest, records, "votes,hidden", hidden=read_hidden(train))
    assert "hidden_00" in art.features and art.training["hidden_projection"]
    path = art.save(tmp_path / "learned.json")
    agg = LearnedAggregator(artifact=str(path))
    tm, trec = read_collection(test)
    with_h = sample_outcomes(trec[0], tm, hidden=read_hidden(test))
    assert agg.choose(Task(trec[0].question), with_h).confidence is not None
    with pytest.raises(ConfigError, match="hidden states"):
        agg.choose(Task(trec[0].question), sample_outcomes(trec[0], tm))


def test_ablation_scores_each_family_set_on_held_out_questions(
    hidden_pair: tuple[Path, Path],
) -> None:
    from ponder.learning.drr.ablate import ablate, family_sets, format_ablation

    assert family_sets(["votes", "confidence", "length"]) == [
        ("votes",),
        ("confidence",),
        ("length",),
        ("confidence", "length"),
        ("votes", "length"),
        ("votes", "confidence"),
        ("votes", "confidence", "length"),
    ]
    train, test = hidden_pair
    load = lambda d: (*read_collection(d), read_hidden(d))  # noqa: E731
    rows = ablate(load(train), load(test), ["votes", "hidden"], resamples=30)
    assert [r.families for r in rows] == [("votes",), ("hidden",), ("votes", "hidden")]
    assert all(r.dm_final.n == 32 and r.dm_final.groups == 4 for r in rows)
    assert "votes+hidden" in format_ablation(rows)
    with pytest.raises(InputError, match="share questions"):
        ablate(load(train), load(train), ["votes"], resamples=10, learned=False)


def test_the_prebuilt_runtime_takes_the_embedding_flags() -> None:
    pytest.importorskip("xllamacpp")
    from ponder.backends.local.prebuilt_server import build_params, parse_args
    from ponder.learning.hidden.embed import EMBED_FLAGS

    params = build_params(parse_args(["-m", "model.gguf", *EMBED_FLAGS]))
    assert params.embedding is True  # type: ignore[attr-defined]
    assert params.pooling_type.name == "LLAMA_POOLING_TYPE_LAST"  # type: ignore[attr-defined]
    assert params.n_ubatch == 4096  # type: ignore[attr-defined]


def test_the_server_embedder_speaks_llama_cpp_http() -> None:
    import httpx

    from ponder.learning.hidden.embed import ServerEmbedder

    seen: list[tuple[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        seen.append((request.url.path, body))
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<|im_start|>user\nQ<|im_end|>\n"})
        if body["input"] == "bad":
            return httpx.Response(400, json={"error": "input is too large"})
        return httpx.Response(200, json={"data": [{"embedding": [0.6, 0.8]}]})

    e = ServerEmbedder("http://x:1/", transport=httpx.MockTransport(handler))
    assert e.prompt([{"role": "user", "content": "Q"}]).startswith("<|im_start|>")
    assert e.embed("text") == [0.6, 0.8]
    assert seen[-1] == ("/v1/embeddings", {"input": "text"})
    with pytest.raises(InputError, match="--embeddings --pooling last"):
        e.embed("bad")


def test_a_hung_embedding_server_is_named_and_the_cache_kept() -> None:
    import httpx

    from ponder.errors import BackendError
    from ponder.learning.hidden.embed import ServerEmbedder

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    e = ServerEmbedder("http://127.0.0.1:9/", transport=httpx.MockTransport(hang))
    with pytest.raises(BackendError, match=r"127.0.0.1:9/v1/embeddings failed: ReadTimeout.*rerun"):
        e.embed("text")


def test_the_cli_embeds_reduces_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import contextlib

    import ponder.learning.hidden as hidden
    from ponder.cli import main

    d = copy("test", tmp_path)

    @contextlib.contextmanager
    def fake_server(model: object, runtime: str = "auto", threads: int = 1):  # type: ignore[no-untyped-def]
        yield FakeEmbedder()

    monkeypatch.setattr(hidden, "embedding_server", fake_server)
    monkeypatch.setattr(hidden, "_model_file", lambda *a: Path("model.gguf"))
    assert main(["corpus", "hidden", str(d), "--first", "2", "--dims", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "embedded 16 samples of 2 new question(s)" in out and "pca to 3 dims" in out
    assert len(read_hidden(d) or ()) == 16


def test_ablation_refuses_a_half_embedded_side_and_the_cli_can_limit_the_test_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ponder.cli import main
    from ponder.learning.drr.ablate import ablate

    train, test = copy("train", tmp_path), copy("test", tmp_path)
    hidden_states(train, dims=4, embedder=FakeEmbedder(), quiet=True)
    hidden_states(test, projection=train, first=2, embedder=FakeEmbedder(), quiet=True)
    load = lambda d: (*read_collection(d), read_hidden(d))  # noqa: E731
    with pytest.raises(InputError, match="miss samples of 2 of its 4 questions.*--test-first"):
        ablate(load(train), load(test), ["votes", "hidden"], resamples=10, learned=False)
    out = tmp_path / "abl"
    args = ["drr", "ablate", "--train", str(train), "--test", str(test), "--test-first", "2"]
    args += ["--families", "votes,hidden", "--resamples", "10", "--no-learned", "--out", str(out)]
    assert main(args) == 0
    rows = __import__("json").loads((out / "ablation.json").read_text())
    assert [r["families"] for r in rows] == [["votes"], ["hidden"], ["votes", "hidden"]]
    assert rows[1]["dm_final"]["n"] == 16  # the 2 embedded test questions x 8 samples


def test_ablation_on_a_plain_test_side_uses_probe_free_judges_and_scores_the_sampler(
    hidden_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    import json

    from ponder.learning.drr.ablate import ablate, format_ablation

    train, test = hidden_pair
    plain = tmp_path / "plain"
    shutil.copytree(test, plain)
    m = json.loads((plain / "manifest.json").read_text())
    m["settings"]["probe_every"] = m["settings"]["max_tokens"]  # as `--probe-every 320` records
    (plain / "manifest.json").write_text(json.dumps(m))
    load = lambda d: (*read_collection(d), read_hidden(d))  # noqa: E731
    rows = ablate(load(train), load(plain), ["votes", "confidence", "hidden"], resamples=20)
    assert [(r.families, r.probes) for r in rows] == [
        (("confidence",), False),
        (("hidden",), False),
        (("confidence", "hidden"), False),
    ]
    assert [r.learned_families for r in rows] == [
        ("votes", "confidence"),
        ("votes", "hidden"),
        ("votes", "confidence", "hidden"),
    ]
    for r in rows:  # one unit per trace (4 q x 8), and per prefix n = 1..8 for the sampler
        assert r.dm_final.n == 32 and r.sampling is not None and r.sampling.n == 32
    table = format_ablation(rows)
    assert "| confidence+hidden (no probes: one-call end) |" in table
    assert "(votes+confidence+hidden)" in table  # the learned aggregator's own families
    probed = ablate(load(train), load(test), ["votes"], resamples=20, learned=False)
    assert probed[0].probes and probed[0].sampling is not None


def test_ablation_pools_a_probed_and_a_plain_train_collection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--train`` twice: the probed corpus is read at the plain one's interval, the hidden
    sidecars (one projection) are merged, and with no probes left only probe-free rows are
    scored, out-of-fold (--cv) or on a test collection."""
    import json

    from ponder.cli import main

    train = copy("train", tmp_path)
    more = tmp_path / "train-plain"
    shutil.copytree(FIXTURES / "train-plain", more)
    test = copy("test", tmp_path)
    hidden_states(train, dims=4, embedder=FakeEmbedder(), quiet=True)
    for d in (more, test):
        hidden_states(d, projection=train, embedder=FakeEmbedder(), quiet=True)
    base = ["drr", "ablate", "--train", str(train), "--train", str(more)]
    base += ["--families", "votes,length,hidden", "--resamples", "10"]
    out = tmp_path / "cv"
    assert main([*base, "--cv", "3", "--out", str(out)]) == 0
    rows = json.loads((out / "ablation.json").read_text())
    assert [(r["families"], r["probes"]) for r in rows] == [
        (["length"], False),
        (["hidden"], False),
        (["length", "hidden"], False),
    ]
    _, a = read_collection(train)
    _, b = read_collection(more)
    n = 8 * (len(a) + len(b))  # every trace of both collections, out of fold
    assert all(r["dm_final"]["n"] == n for r in rows)
    assert rows[2]["learned_families"] == ["votes", "length", "hidden"]
    assert rows[2]["learned_pick_accuracy"] is not None
    out = tmp_path / "held"
    assert main([*base, "--test", str(test), "--out", str(out)]) == 0
    held = json.loads((out / "ablation.json").read_text())
    assert [r["families"] for r in held] == [["length"], ["hidden"], ["length", "hidden"]]
    # a plain sidecar projected otherwise is refused, naming the fix
    shutil.rmtree(tmp_path / "other", ignore_errors=True)
    other = copy("train", tmp_path / "other")
    hidden_states(other, dims=4, method="random", embedder=FakeEmbedder(), quiet=True)
    (more / "hidden-raw.jsonl").unlink()
    hidden_states(more, projection=other, embedder=FakeEmbedder(), quiet=True)
    capsys.readouterr()
    assert main([*base, "--cv", "3"]) != 0
    err = capsys.readouterr().err
    assert "projected with" in err and f"--projection {train}" in err
