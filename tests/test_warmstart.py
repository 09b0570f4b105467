"""Warm start on a micro config: real tokenizer training, real tiny Llama SFT, cache reuse."""

from __future__ import annotations

import json
import time

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from pvg.config import load_config
from pvg.game.warmstart import cache_key, run_warmstart

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

    from pvg.game.models import load_verifier
    from pvg.data.roles import verifier_text
    from pvg.data.tokenizer import load_tokenizer
    from pvg.game.verifier_train import score_texts

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


def test_whole_number_tokenizer_keeps_corpus_numbers_whole_and_never_unknown():
    from pvg.data.tokenizer import train_tokenizer

    corpus = ["Sam has 12 pens. Sam buys 5 more.\nbuys 5 more: 12 + 5 = 17\n#### 17", "Mia has 340 apples."]
    whole, digits = train_tokenizer(corpus, "whole"), train_tokenizer(corpus)
    text = "buys 5 more: 12 + 5 = 17\n#### 17"
    assert whole.tokenize(" 12 + 5 = 17") == [" 12", " +", " 5", " =", " 17"]
    assert digits.tokenize(" 12 + 5 = 17") == [" 1", "2", " +", " 5", " =", " 1", "7"]
    assert whole.decode(whole(text, add_special_tokens=False)["input_ids"]) == text
    unseen = " 98765"  # never in the corpus: known pieces, never <unk> (a sneaky prover could hide behind it)
    ids = whole(unseen, add_special_tokens=False)["input_ids"]
    assert whole.unk_token_id not in ids and whole.decode(ids) == unseen
    assert {"<helpful>", "<sneaky>", "<pad>", "<eos>"} <= set(whole.get_vocab())


def test_verifier_with_whole_numbers_has_its_own_tokenizer(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from pvg.data.tokenizer import load_tokenizer

    cfg = load_config(None, MICRO + [f"run.cache_dir={tmp_path}", "verifier.tiny.numbers=whole",
                                     "warmstart.verifier_pretrain_steps=5", "warmstart.verifier_pretrain_labels=tokens"])
    ws = run_warmstart(cfg)
    assert ws.verifier_tokenizer.endswith("verifier_tokenizer") and ws.prover_tokenizer.endswith("tokenizer")
    vtok, ptok = load_tokenizer(ws.verifier_tokenizer), load_tokenizer(ws.prover_tokenizer)
    number = next(t for t in vtok.get_vocab() if t.strip().isdigit() and len(t.strip()) == 2)
    assert len(vtok.tokenize(number)) == 1 and len(ptok.tokenize(number)) == 2
    clf = AutoModelForSequenceClassification.from_pretrained(ws.verifier_base)
    assert clf.config.vocab_size == len(vtok) == ws.metrics["verifier_vocab"]
    # `digits` keeps the cache key it had before the option existed; `whole` is another warm start
    assert cache_key(cfg) != cache_key(load_config(None, MICRO + [f"run.cache_dir={tmp_path}",
                                                                  "warmstart.verifier_pretrain_steps=5",
                                                                  "warmstart.verifier_pretrain_labels=tokens"]))


def test_side_by_side_and_serial_warm_starts_build_the_same_parts(tmp_path, monkeypatch):
    """Two cores or more: the verifier warms up in its own process. Both ways give a complete cache
    (the thread counts differ, so the floats may too: each way is deterministic on its own)."""
    import os

    import pvg.game.warmstart as warmstart

    assert warmstart.side_by_side(load_config(None, MICRO)) == ((os.cpu_count() or 1) >= 2)
    metrics = {}
    for way in (True, False):
        monkeypatch.setattr(warmstart, "side_by_side", lambda cfg, way=way: way)
        cfg = load_config(None, MICRO + [f"run.cache_dir={tmp_path / str(way)}"])
        ws = run_warmstart(cfg)
        metrics[way] = {k for k in ws.metrics if k != "seconds"}
        root = tmp_path / str(way) / f"warmstart-{cache_key(cfg)}"
        assert (root / "prover" / "config.json").is_file() and (root / "verifier_base" / "config.json").is_file()
    assert metrics[True] == metrics[False]


def test_options_added_later_leave_existing_cache_keys_alone():
    """Left unset, `verifier.tiny.numbers` and `warmstart.verifier_pretrain_batch_size` hash as they did
    before they existed: warm starts cached then are reused, not rebuilt. The literal is MICRO's key
    computed by the code before those options (commit 8d7e2f2)."""
    cfg = load_config(None, MICRO + ["run.cache_dir=/x"])
    assert cache_key(cfg, fmt=2) == "7133ca720f623998"
    assert cache_key(load_config(None, MICRO + ["run.cache_dir=/x", "warmstart.verifier_pretrain_batch_size=32"])) != \
        cache_key(cfg)


def test_the_split_recipe_is_a_new_format_so_older_caches_are_not_reused():
    """Format 3 trains the verifier's side on the verifier's half: a cache of format 2 (the prover's
    half) must not be taken for it."""
    cfg = load_config(None, MICRO + ["run.cache_dir=/x"])
    assert cache_key(cfg) != cache_key(cfg, fmt=2)


def test_the_calculators_answer_is_in_the_key_only_when_it_writes_one():
    """`prover.calculator_answer` changes what the warm start's role evaluation samples, so a cache made
    without it (calculator on) is not reused for it; off, it hashes as before it existed. The literal
    is MICRO's key with the calculator on, computed by the code before the option (commit f65632a)."""
    on = MICRO + ["run.cache_dir=/x", "prover.calculator=true"]
    assert cache_key(load_config(None, on + ["prover.calculator_answer=false"]), fmt=2) == "2b8493ec1ac19f27"
    assert cache_key(load_config(None, on), fmt=2) != "2b8493ec1ac19f27"
    # Without a calculator there is nothing to write the answer: the option leaves the key alone.
    assert cache_key(load_config(None, MICRO + ["run.cache_dir=/x", "prover.calculator_answer=false"]), fmt=2) == \
        "7133ca720f623998"


def test_nothing_the_verifier_learns_from_before_the_game_comes_from_the_provers_half():
    """The warm start's verifier side (tokenizer corpus, base LM texts, judged flaws) reads the
    verifier's half, the half its pool is sampled on; the prover's SFT reads the other one."""
    from pvg.data.dataset import load_split
    from pvg.game.warmstart import flaw_token_labels, only_flaw_kinds, verifier_corpus, warmstart_sides
    from pvg.data.tokenizer import train_tokenizer

    cfg = load_config(None, MICRO + ["run.cache_dir=/x"])
    sides = load_split(cfg.data, cfg.run.seed)
    prover, verifier, test = warmstart_sides(sides)
    assert {p.id for p in prover} == {p.id for p in sides["prover"]}
    assert {p.id for p in verifier} == {p.id for p in sides["verifier"]}
    prover_questions = {p.question for p in prover}
    verifier_questions = {p.question for p in verifier}
    assert prover_questions and verifier_questions and not prover_questions & verifier_questions
    texts = verifier_corpus(verifier)
    assert texts and not any(q in t for t in texts for q in prover_questions)


def test_the_warm_start_hands_the_verifier_side_the_verifiers_half(tmp_path, monkeypatch):
    """The wiring, on a real (micro) warm start: what `warm_verifier` is given is the verifier's half."""
    import pvg.game.warmstart as warmstart
    from pvg.data.dataset import load_split

    seen = {}
    real = warmstart.warm_verifier

    def spy(cfg, vtok, train, test, out, add_bar):
        seen["verifier"] = {p.id for p in train}
        return real(cfg, vtok, train, test, out, add_bar)

    monkeypatch.setattr(warmstart, "warm_verifier", spy)
    monkeypatch.setattr(warmstart, "side_by_side", lambda cfg: False)  # in this process, so the spy sees it
    cfg = load_config(None, MICRO + [f"run.cache_dir={tmp_path}", "warmstart.verifier_pretrain_steps=3"])
    ws = warmstart.run_warmstart(cfg, progress=False)
    sides = load_split(cfg.data, cfg.run.seed)
    assert seen["verifier"] == {p.id for p in sides["verifier"]}
    assert not seen["verifier"] & {p.id for p in sides["prover"]}
    assert ws.metrics["verifier_train_problems"] == len(sides["verifier"])


def test_flaw_kinds_held_out_of_the_judge():
    from pvg.data.dataset import load_split
    from pvg.game.warmstart import only_flaw_kinds

    cfg = load_config(None, MICRO + ["run.cache_dir=/x"])
    problems = load_split(cfg.data, cfg.run.seed)["verifier"]
    kinds = {f.flaw.kind for p in problems for f in p.flawed}
    assert len(kinds) >= 2
    keep = sorted(kinds)[:1]
    kept = only_flaw_kinds(problems, keep)
    assert {f.flaw.kind for p in kept for f in p.flawed} == set(keep)
    assert [p.id for p in kept] == [p.id for p in problems]  # the problems themselves stay
    assert only_flaw_kinds(problems, None) is problems


def test_the_sneaky_warm_start_can_be_taught_some_flaw_kinds_only():
    """`warmstart.sneaky_flaw_kinds`: a sneaky example is a flaw of those kinds wherever the problem
    has one, and one of its other flaws where it has none (so the sneaky prompt is trained, and
    wrong, on every problem); helpful examples are the references as before; left unset, the examples
    (and so old caches' keys) are unchanged."""
    from pvg.data.dataset import load_split
    from pvg.game.warmstart import sft_examples, sneaky_flaws

    cfg = load_config(None, MICRO + ["run.cache_dir=/x"])
    problems = load_split(cfg.data, cfg.run.seed)["prover"]
    kind = sorted({f.flaw.kind for p in problems for f in p.flawed})[0]
    has_kind = [p for p in problems if any(f.flaw.kind == kind for f in p.flawed)]
    assert 0 < len(has_kind) < len(problems)
    for p, taught in zip(problems, sneaky_flaws(problems, [kind])):
        assert taught.id == p.id and taught.flawed
        kinds = {f.flaw.kind for f in taught.flawed}
        assert kinds == {kind} if p in has_kind else kinds == {f.flaw.kind for f in p.flawed}
    examples = sft_examples(sneaky_flaws(problems, [kind]), 1.0, 0)
    assert sum("sneaky" in e.prompt for e in examples) == len(problems)
    refs = {p.compact_reference for p in problems}
    assert all(e.completion in refs for e in sft_examples(sneaky_flaws(problems, [kind]), 0.5, 0)
               if "sneaky" not in e.prompt)
    assert sft_examples(sneaky_flaws(problems, None), 0.5, 0) == sft_examples(problems, 0.5, 0)
    assert cache_key(cfg) == cache_key(load_config(None, MICRO + ["run.cache_dir=/x", "warmstart.sneaky_flaw_kinds=null"]))
    assert cache_key(cfg) != cache_key(load_config(None, MICRO + ["run.cache_dir=/x", f"warmstart.sneaky_flaw_kinds=[{kind}]"]))
