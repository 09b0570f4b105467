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


@pytest.mark.parametrize("labels", ["pairs", "tokens"])
def test_verifier_pretraining_teaches_the_base_to_judge(tmp_path, labels):
    """With `verifier_pretrain_steps`, the verifier base is a judging sequence classifier, not a bare LM.

    Easy flaw kinds (a wrong operation, a dropped step) so that a few dozen steps of a micro model are
    enough: the point is that the step runs on real pairs (or token labels) and what it learns is what
    the game starts from.
    """
    from transformers import AutoModelForSequenceClassification

    from pvg.models import load_verifier
    from pvg.roles import verifier_text
    from pvg.tokenizer import load_tokenizer
    from pvg.verifier_train import score_texts

    # Token labels teach position first ("later tokens are more often past a flaw"), which ranks a
    # short dropped-step solution above its reference in a micro model; one flaw kind that keeps the
    # length shows what they teach in a few dozen steps.
    kinds = "[wrong_operation,dropped_step]" if labels == "pairs" else "[wrong_operation]"
    cfg = load_config(None, MICRO + [f"run.cache_dir={tmp_path}", f"data.flaw_kinds={kinds}",
                                     f"warmstart.verifier_pretrain_steps={120 if labels == 'pairs' else 800}", "verifier.batch_pairs=16",
                                     f"warmstart.verifier_pretrain_labels={labels}", "verifier.lr=3e-3"])
    ws = run_warmstart(cfg)
    assert ws.metrics["verifier_pretrain_heldout_pair_acc"] >= 0.7, ws.metrics  # chance is 0.5
    clf = AutoModelForSequenceClassification.from_pretrained(ws.verifier_base)
    assert clf.config.num_labels == 1
    # The game re-initializes every round from exactly these weights, score head included.
    tok = load_tokenizer(ws.verifier_tokenizer)
    text = [verifier_text("Sam has 12 pens. Sam buys 5 more. How many pens does Sam have now?",
                          "buys 5 more: 12 + 5 = 17\n#### 17")]
    a = score_texts(load_verifier(ws.verifier_base, tok.pad_token_id, seed=1), tok, text, 64)
    b = score_texts(load_verifier(ws.verifier_base, tok.pad_token_id, seed=2), tok, text, 64)
    assert a == b
