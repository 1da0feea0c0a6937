"""The artifact base: save/load, format version, and the reasoner check of learned artifacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest

from ponder.aggregator.learned import DEFAULT_ARTIFACT as LEARNED_DEFAULT
from ponder.aggregator.learned import LearnedArtifact
from ponder.backends.local.model import DEFAULT_MODEL
from ponder.behaviour.artifact import Artifact, ReasonerMismatch
from ponder.behaviour.records import DEFAULT_REASONER, DatasetInfo, Manifest, ModelInfo
from ponder.errors import ConfigError, InputError
from ponder.stopping.model import DEFAULT_ARTIFACT as DM_DEFAULT
from ponder.stopping.model import DM


class Toy(Artifact):
    FORMAT: ClassVar[str] = "ponder.toy/1"
    KIND: ClassVar[str] = "toy"
    FIELD: ClassVar[str] = "toy"
    TRAIN: ClassVar[str] = "ponder toy train"

    format: str = FORMAT
    weight: float
    manifest: Manifest


def manifest(sha: str | None = "a" * 64, name: str = "m", **templates: str) -> Manifest:
    return Manifest(
        model=ModelInfo(name=name, file=f"/models/{name}.gguf", sha256=sha),
        templates={"cot_user": "h1", "probe_cue": "h2", **templates},
        settings={"probe_every": 64, "k": 8},
        seed=0,
        dataset=DatasetInfo(path="train.jsonl", sha256="d", rows=10),
    )


def test_the_default_reasoner_is_the_embedded_default_model() -> None:
    assert DEFAULT_REASONER.sha256 == DEFAULT_MODEL.sha256
    assert DEFAULT_REASONER.name == DEFAULT_MODEL.name
    assert DEFAULT_REASONER.file == DEFAULT_MODEL.file_name
    assert DEFAULT_REASONER.id == DEFAULT_MODEL.sha256


@pytest.mark.parametrize(("cls", "path"), [(DM, DM_DEFAULT), (LearnedArtifact, LEARNED_DEFAULT)])
def test_shipped_artifacts_round_trip_byte_for_byte(
    cls: type[Artifact], path: Path, tmp_path: Path
) -> None:
    art = cls.load("default")
    assert art.save(tmp_path / path.name).read_bytes() == path.read_bytes()
    judged = art.manifest.model_copy(update={"model": DEFAULT_REASONER})
    art.check_reasoner(judged)  # the default model is the shipped artifacts' reasoner
    art.check_names({DEFAULT_REASONER.id})  # what `reasoner: default` and the samples name


def test_save_load_cache_and_format(tmp_path: Path) -> None:
    path = Toy(weight=1.5, manifest=manifest()).save(tmp_path / "sub" / "toy.json")
    assert Toy.load(path).weight == 1.5 and Toy.load(path) is Toy.load(str(path))
    Toy(weight=2.5, manifest=manifest()).save(path)
    os.utime(path, ns=(1, 1))  # a rewrite is seen even within one mtime tick
    assert Toy.load(path).weight == 2.5
    with pytest.raises(
        InputError, match=r"'ponder\.toy/1' artifact; this Ponder reads 'ponder\.dm/1'"
    ):
        DM.load(path)
    with pytest.raises(InputError, match="not found .*ponder toy train"):
        Toy.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match="no default toy artifact"):
        Toy.load("default")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(InputError, match="not JSON"):
        Toy.load(tmp_path / "bad.json")


def test_reasoner_check_names_what_differs() -> None:
    toy = Toy(weight=0, manifest=manifest())
    toy.check_reasoner(manifest())
    toy.check_reasoner(manifest(name="renamed"))  # the sha256 identifies the model
    with pytest.raises(ReasonerMismatch, match="template cot_user h1 \\(training\\) vs h9") as err:
        toy.check_reasoner(manifest(cot_user="h9"))
    assert isinstance(err.value, ConfigError) and err.value.field == "toy"
    assert "model" not in str(err.value).split("judge:")[1]
    with pytest.raises(ReasonerMismatch, match="model m .* vs other .*allow_other_reasoner"):
        toy.check_reasoner(manifest(sha="b" * 64, name="other"))
    with pytest.raises(ReasonerMismatch, match="template extra only in the judged"):
        toy.check_reasoner(manifest(extra="h3"))
    toy.check_reasoner(manifest(sha="b" * 64), allow_other=True)


def test_live_settings_and_named_models() -> None:
    toy = Toy(weight=0, manifest=manifest())
    toy.check_live({"cot_user": "h1"}, {"probe_every": 64, "unrecorded": 3})
    with pytest.raises(ReasonerMismatch, match=r"template cot_user; probe_every \(32 vs 64"):
        toy.check_live({"cot_user": "hx"}, {"probe_every": 32})
    with pytest.raises(ReasonerMismatch, match="template system .not in the toy's manifest"):
        toy.check_live({"system": "h"})
    toy.check_live({"cot_user": "hx"}, allow_other=True)
    toy.check_names({"a" * 64, "m", "m.gguf"})
    with pytest.raises(ReasonerMismatch, match=r"not on \['zz'\]") as err:
        toy.check_names({"m", "zz"}, field="aggregator.reasoner")
    assert err.value.field == "aggregator.reasoner"
    assert manifest(sha=None).model.id == "m"
