import json
import subprocess
import sys

import pytest

from ponder.config import ChainConfig, LocalBackendConfig, OpenAIBackendConfig
from ponder.errors import ConfigError, PromptError, UnknownNameError
from ponder.prompts import load_template
from ponder.strategies import ChainOfThought, build_strategy


def test_yaml_chain_loads(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text(
        "backend: {kind: openai, base_url: 'http://h/v1', model: m}\n"
        "strategy: {name: cot, max_tokens: 300}\nbudget: {total_tokens: 1000}\n"
    )
    cfg = ChainConfig.load(path)
    assert isinstance(cfg.backend, OpenAIBackendConfig)
    assert isinstance(cfg.strategy, ChainOfThought) and cfg.strategy.max_tokens == 300
    assert cfg.budget.total_tokens == 1000


def test_json_chain_and_defaults(tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"strategy": {"name": "cot"}}))
    cfg = ChainConfig.load(path)
    assert isinstance(cfg.backend, LocalBackendConfig)


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(UnknownNameError) as exc:
        ChainConfig.from_dict({"strategy": {"name": "nope"}})
    assert exc.value.field == "strategy.name"
    assert "cot" in exc.value.choices
    assert "valid choices" in str(exc.value)


@pytest.mark.parametrize(
    "data,field",
    [
        ({"strategy": {"name": "cot", "max_tokens": 0}}, "strategy.max_tokens"),
        ({"strategy": {"name": "cot", "temprature": 0.5}}, "strategy.temprature"),
        ({"backend": {"kind": "smoke"}}, "backend.kind"),
        ({"backend": {"kind": "openai", "timeout_s": -1}}, "backend.timeout_s"),
        ({"budget": {"total_tokens": -5}}, "budget.total_tokens"),
        ({"roles": {"aggregator": {"kind": "nope"}}}, "roles.aggregator.kind"),
        ({"stratgy": {}}, "stratgy"),
    ],
)
def test_errors_name_the_field(data, field):
    with pytest.raises(ConfigError) as exc:
        ChainConfig.from_dict(data)
    assert exc.value.field == field, str(exc.value)


def test_malformed_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("strategy: {name: cot\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ChainConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        ChainConfig.load(tmp_path / "missing.yaml")


def test_template_with_undefined_variable_is_rejected_at_load(tmp_path):
    tpl = tmp_path / "user.j2"
    tpl.write_text("{{ question }} and {{ qestion_typo }}")
    with pytest.raises(PromptError, match="qestion_typo"):
        build_strategy({"name": "cot", "user_template": str(tpl)})
    with pytest.raises(PromptError, match="unknown prompt template"):
        load_template("does-not-exist")


def test_cli_errors_exit_2_with_a_clear_message(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("strategy: {name: nope}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ponder", "run", "--config", str(bad), "q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "strategy.name" in proc.stderr and "valid choices" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ponder", "run", "  "], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "empty" in proc.stderr
