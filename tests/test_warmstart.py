"""Warm start on a micro config: real tokenizer training, real tiny Llama SFT, cache reuse."""

from __future__ import annotations

import json
import time

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from pvg.config import load_config
from pvg.warmstart import cache_key, run_warmstart

MICRO = [
    "data.num_problems=400", "data.max_steps=2",
    "prover.tiny.hidden_size=32", "prover.tiny.num_layers=1", "prover.tiny.intermediate_size=64",
    "verifier.tiny.hidden_size=16", "verifier.tiny.num_layers=1", "verifier.tiny.intermediate_size=32",
    "warmstart.prover_steps=15", "warmstart.verifier_steps=5", "warmstart.batch_size=16", "warmstart.eval_problems=10",
    "logging.progress=false",
]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ws-cache")
    return load_config(None, MICRO + [f"run.cache_dir={cache}"])


def test_warmstart_builds_models_and_is_cached(cfg):
    ws = run_warmstart(cfg)
    for key in ("helpful_pass_rate", "sneaky_incorrect_rate", "prover_params", "verifier_params", "seconds"):
        assert key in ws.metrics
    assert 0 <= ws.metrics["helpful_pass_rate"] <= 1
    # the prover is several times larger than the verifier
    assert ws.metrics["prover_params"] > 2 * ws.metrics["verifier_params"]
    tok = AutoTokenizer.from_pretrained(ws.prover_tokenizer)
    assert {"<helpful>", "<sneaky>"} <= set(tok.get_vocab())
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>"
    text = "Sam has 12 pens.\nbuys 5 more: 12 + 5 = 17\n#### 17"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert len(tok.tokenize(" 1234")) == 4, "every digit is its own token"
    model = AutoModelForCausalLM.from_pretrained(ws.prover)
    assert model.config.hidden_size == 32

    t0 = time.time()
    again = run_warmstart(cfg)
    assert again.metrics == ws.metrics and time.time() - t0 < 5, "a second run reuses the cache"


def test_cache_key_tracks_what_determines_it(cfg):
    same = cfg.model_copy(deep=True)
    same.ppo.lr = 1.0  # the game's settings don't change the warm start
    assert cache_key(same) == cache_key(cfg)
    other = cfg.model_copy(deep=True)
    other.warmstart.prover_steps += 1
    assert cache_key(other) != cache_key(cfg)


def test_warmstart_cli_prints_metrics(cfg, tmp_path):
    from typer.testing import CliRunner

    from pvg.cli import app

    cfg_file = tmp_path / "micro.yaml"
    cfg_file.write_text(cfg.to_yaml())
    result = CliRunner().invoke(app, ["warmstart", str(cfg_file)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert "helpful_pass_rate" in out and out["prover"].endswith("prover")
