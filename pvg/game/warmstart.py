"""Warm start: make the tiny prover and the tiny verifier's base competent before the game.

The prover learns both roles by supervised training on role-conditioned synthetic solutions
(helpful → the reference, sneaky → a flawed one); the verifier's base learns the same corpus as a
language model, so the verifier phase only has to learn to judge, not to read. The result is cached
under a hash of everything that determines it: a second run (or a resumed one) reuses it.
A hub model (`prover.model` / `verifier.model` set) is already competent and is taken as it is,
except that a hub prover may be given its sneaky role first (`warmstart.hub_prover_steps`:
`pvg.game.hub_warmstart`, TRL's SFTTrainer on planted-flaw GSM8K solutions), cached the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pvg import __version__
from pvg.config import PvgConfig
from pvg.data.dataset import load_split, with_flaws
from pvg.errors import PvgError
from pvg.game.generation import generate
from pvg.data.grading import is_correct
from pvg.game.models import build_tiny_causal_lm, load_verifier, num_params, quiet_libraries
from pvg.data.problems import Problem
from pvg.progress import AddBar, console, progress_bars
from pvg.data.roles import ROLES, prover_prompt, verifier_text
from pvg.game.sft import Example, encode, train_lm
from pvg.game.sidejob import SideJob
from pvg.data.tokenizer import save_tokenizer, train_tokenizer
from pvg.game.verifier_train import Pair, TokenLabels, departure_labels, score_texts, train_verifier, train_verifier_tokens

WARMSTART_FORMAT = 4  # 4: flaw kinds planted in turn, the sneaky role taught on every problem; bump when the warm-start recipe changes, so old caches are not reused


@dataclass(frozen=True)
class WarmStart:
    prover: str  # path or hub id of the initial prover
    prover_tokenizer: str
    verifier_base: str  # path or hub id the verifier is re-initialized from every round
    verifier_tokenizer: str
    metrics: dict


# Options added after warm starts were first cached, each with the value that does what the code did
# before it existed: at that value an option is left out of the key, so those caches stay valid.
ADDED_LATER: dict[tuple[str, ...], Any] = {
    ("verifier", "tiny", "numbers"): "digits",
    ("warmstart", "verifier_pretrain_batch_size"): None,
    ("prover", "calculator_answer"): False,
    ("warmstart", "verifier_flaw_kinds"): None,
    ("warmstart", "sneaky_flaw_kinds"): None,
    ("warmstart", "hub_prover_steps"): 0,
    ("warmstart", "hub_lr"): 1e-5,
    ("warmstart", "hub_batch_size"): 8,
    ("prover", "lora"): None,  # a hub prover's warm start trains through the adapter
    ("data", "first_step_kinds"): [],
    ("data", "last_step_kinds"): [],
}


def cache_key(cfg: PvgConfig, fmt: int = WARMSTART_FORMAT) -> str:
    """The config's warm-start identity; `fmt` other than the current format only for tests that pin
    how options added later leave older keys alone."""
    determined_by = {
        "format": fmt,
        "seed": cfg.run.seed,
        "data": cfg.data.model_dump(mode="json"),
        "prover": cfg.prover.model_dump(mode="json", include={"model", "tiny", "max_new_tokens", "temperature", "calculator",
                                                               "calculator_answer", "lora"}),
        "verifier": cfg.verifier.model_dump(mode="json", include={"model", "tiny", "lr", "batch_pairs", "center_coef",
                                                                   "max_length"}),
        "warmstart": cfg.warmstart.model_dump(mode="json"),
    }
    # What the answer setting does: nothing without a calculator, so off then, as before it existed.
    determined_by["prover"]["calculator_answer"] = cfg.prover.calculator and cfg.prover.calculator_answer
    for (*parents, name), before in ADDED_LATER.items():
        section = functools.reduce(dict.__getitem__, parents, determined_by)
        if section[name] == before:
            del section[name]
    return hashlib.sha256(json.dumps(determined_by, sort_keys=True).encode()).hexdigest()[:16]


def corpus_texts(problems: list[Problem]) -> list[str]:
    texts = []
    for p in problems:
        texts.append(p.question)
        texts.append(p.compact_reference or p.reference or "")
        texts.extend(f.compact for f in p.flawed)
    return texts


def sft_examples(problems: list[Problem], sneaky_fraction: float, seed: int) -> list[Example]:
    """Helpful → reference, sneaky → one of the flawed solutions; sneaky share as configured."""
    rng = random.Random(seed)
    out = []
    for p in problems:
        solution = p.compact_reference or p.reference
        if rng.random() >= sneaky_fraction:
            out.append(Example(prover_prompt(None, p.question, "helpful", tiny=True), solution))
        if p.flawed and rng.random() < sneaky_fraction:
            out.append(Example(prover_prompt(None, p.question, "sneaky", tiny=True), rng.choice(p.flawed).compact))
    return out


def evaluate_roles(model, tok, problems: list[Problem], *, tiny: bool, max_new_tokens: int, temperature: float,
                   seed: int, calculator: bool = False, calculator_answer: bool = True) -> dict:
    """Both roles sampled as in the game (at the prover's temperature), and greedily for reference.

    The sampled rates are the headline: they are what the game starts from. Greedy decoding
    under-states the sneaky role, whose flaw is never the single most likely next line.
    """
    result = {}
    prompts = {role: [prover_prompt(tok, p.question, role, tiny) for p in problems] for role in ROLES}
    for greedy, suffix in ((False, ""), (True, "_greedy")):
        for role in ROLES:
            samples = generate(model, tok, prompts[role], max_new_tokens=max_new_tokens, greedy=greedy,
                               temperature=temperature, seed=seed, calculator=calculator,
                               calculator_answer=calculator_answer)
            rate = sum(is_correct(s.text, p.answer) for s, p in zip(samples, problems)) / len(problems)
            if role == "helpful":
                result["helpful_pass_rate" + suffix] = rate
            else:
                result["sneaky_incorrect_rate" + suffix] = 1 - rate
    return result


def flaw_pairs(problems: list[Problem]) -> list[Pair]:
    return [Pair(verifier_text(p.question, p.compact_reference), verifier_text(p.question, f.compact))
            for p in problems if p.compact_reference for f in p.flawed]


def flaw_token_labels(tok, problems: list[Problem], max_length: int) -> list[TokenLabels]:
    """Every reference and planted-flaw solution, each token labelled by whether the flaw has begun."""
    out = []
    for p in problems:
        if not p.compact_reference:
            continue
        question, reference = verifier_text(p.question, ""), verifier_text(p.question, p.compact_reference)
        for solution in [p.compact_reference, *(f.compact for f in p.flawed)]:
            out.append(departure_labels(tok, question, verifier_text(p.question, solution), reference, max_length))
    return out


def pretrain_verifier(cfg: PvgConfig, tok, base_dir: Path, train: list[Problem], test: list[Problem],
                      add_bar: AddBar) -> dict:
    """Teach the verifier base what a wrong step looks like before the game, as a math-tuned model knows.

    The paper's verifiers start from models pretrained and lightly tuned on math; a tiny model from
    scratch knows nothing of the kind, and the few thousand pool pairs of a round are not enough to
    learn to compare a solution's numbers with the question's. Only the verifier's half is used (the
    prover's half, where the sneaky role learned its flaws, stays unseen, and so does the test set), and every round still starts
    again from these weights. `tokens` labels (process supervision) are what make the comparison
    learnable at this size: see `train_verifier_tokens`.
    """
    vc, ws = cfg.verifier, cfg.warmstart
    model = load_verifier(base_dir, tok.pad_token_id, seed=cfg.run.seed + 2).to(_device())
    steps = ws.verifier_pretrain_steps
    advance = add_bar("warm start: verifier judging", steps)
    if ws.verifier_pretrain_labels == "tokens":
        stats = train_verifier_tokens(model, flaw_token_labels(tok, train, vc.max_length), pad_id=tok.pad_token_id,
                                      steps=steps, batch_size=ws.verifier_pretrain_batch_size or ws.batch_size, lr=vc.lr,
                                      seed=cfg.run.seed + 2, on_step=lambda s, loss, acc: advance(loss=loss, acc=acc))
        stats = {"verifier_pretrain_final_acc": stats["verifier_final_acc"]}
    else:
        stats = train_verifier(model, tok, flaw_pairs(train), steps=steps, batch_pairs=vc.batch_pairs, lr=vc.lr,
                               center_coef=vc.center_coef, max_length=vc.max_length, seed=cfg.run.seed + 2,
                               on_step=lambda s, loss, acc: advance(loss=loss, acc=acc))
        stats = {"verifier_pretrain_pair_acc": stats["verifier_pair_acc"]}
    held = flaw_pairs(test[: cfg.warmstart.eval_problems])
    chosen = score_texts(model, tok, [p.chosen for p in held], vc.max_length)
    rejected = score_texts(model, tok, [p.rejected for p in held], vc.max_length)
    shutil.rmtree(base_dir)
    model.save_pretrained(base_dir)
    return stats | {"verifier_pretrain_heldout_pair_acc": sum(c > r for c, r in zip(chosen, rejected)) / len(held)}


def _device() -> torch.device:
    """The driver's GPU when it has one: a config-built prover of ~100M parameters (configs/gpu-100m.yaml)
    would take hours on CPU. The tiny CPU default is unaffected."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def warm_prover(cfg: PvgConfig, tok, train: list[Problem], test: list[Problem], out: Path, add_bar: AddBar) -> dict:
    """Supervised training on both roles, then each role sampled on held-out problems."""
    prover = build_tiny_causal_lm(tok, cfg.prover.tiny, cfg.run.seed).to(_device())
    taught = sneaky_flaws(train, cfg.warmstart.sneaky_flaw_kinds)  # the sneaky role's kinds, if narrowed
    examples = encode(tok, sft_examples(taught, cfg.warmstart.sneaky_fraction, cfg.run.seed), cfg.prover.tiny.max_positions)
    advance = add_bar("warm start: prover SFT", cfg.warmstart.prover_steps)
    losses = train_lm(prover, examples, steps=cfg.warmstart.prover_steps, batch_size=cfg.warmstart.batch_size,
                      lr=cfg.warmstart.lr, warmup=cfg.warmstart.prover_warmup_steps, pad_id=tok.pad_token_id,
                      seed=cfg.run.seed, on_step=lambda s, loss: advance(loss=loss))
    prover.save_pretrained(out / "prover")
    metrics = {"prover_params": num_params(prover), "prover_final_loss": sum(losses[-20:]) / len(losses[-20:])}
    test = test[: cfg.warmstart.eval_problems]
    metrics |= evaluate_roles(prover, tok, test, tiny=True, max_new_tokens=cfg.prover.max_new_tokens,
                              temperature=cfg.prover.temperature, seed=cfg.run.seed, calculator=cfg.prover.calculator,
                              calculator_answer=cfg.prover.calculator_answer)
    return metrics | {"eval_problems": len(test)}


def only_flaw_kinds(problems: list[Problem], kinds: list[str] | None) -> list[Problem]:
    """The problems with only the planted flaws of `kinds` (all when None), for the judge: a kind the
    sneaky role learns (`sneaky_flaws`) but the verifier never sees before the game is its honest
    blind spot, for rounds to close."""
    if kinds is None:
        return problems
    keep = set(kinds)
    return [dataclasses.replace(p, flawed=tuple(f for f in p.flawed if f.flaw.kind in keep)) for p in problems]


def sneaky_flaws(problems: list[Problem], kinds: list[str] | None) -> list[Problem]:
    """The sneaky role's examples: the flaws of `kinds` where a problem has any, its other flaws where
    it has none. Dropping such a problem instead left the sneaky prompt untrained on it, and round 0's
    sneaky role right on 7.6% of problems, short of the exploit rule's 95% wrong before PPO began:
    docs/results.md#every-problem-a-sneaky-example."""
    if kinds is None:
        return problems
    return [own if own.flawed else p for p, own in zip(problems, only_flaw_kinds(problems, kinds))]


def warm_verifier(cfg: PvgConfig, vtok, train: list[Problem], test: list[Problem], out: Path, add_bar: AddBar) -> dict:
    """The verifier's base as a language model of the corpus, then (if configured) taught to judge."""
    train = only_flaw_kinds(train, cfg.warmstart.verifier_flaw_kinds)
    base = build_tiny_causal_lm(vtok, cfg.verifier.tiny, cfg.run.seed + 1).to(_device())
    encoded = encode(vtok, [Example("", t) for t in verifier_corpus(train)], cfg.verifier.max_length)
    advance = add_bar("warm start: verifier base LM", cfg.warmstart.verifier_steps)
    losses = train_lm(base, encoded, steps=cfg.warmstart.verifier_steps, batch_size=cfg.warmstart.batch_size,
                      lr=cfg.warmstart.lr, warmup=cfg.warmstart.verifier_warmup_steps, pad_id=vtok.pad_token_id,
                      seed=cfg.run.seed + 1, mask_prompt=False, on_step=lambda s, loss: advance(loss=loss))
    base.save_pretrained(out / "verifier_base")
    metrics = {"verifier_params": num_params(base), "verifier_vocab": len(vtok),
               "verifier_final_loss": sum(losses[-20:]) / len(losses[-20:])}
    if cfg.warmstart.verifier_pretrain_steps:
        metrics |= pretrain_verifier(cfg, vtok, out / "verifier_base", train, test, add_bar)
    return metrics


def warmstart_sides(sides: dict) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(prover's, verifier's, held-out) problems of the warm start: the paper's split (D_pi and D_V are
    "never optimized on the same prompt"). The prover's SFT, its sneaky role's planted flaws among
    them, comes from the prover's half; everything the verifier learns from (its tokenizer, base LM,
    judging) from the verifier's half, where its pool is sampled too."""
    return sides["prover"], sides["verifier"], sides["test"]


def verifier_corpus(problems: list[Problem]) -> list[str]:
    """The verifier base's language-model texts: each problem's reference and planted-flaw solutions."""
    return [verifier_text(p.question, s) for p in problems for s in [p.compact_reference, *(f.compact for f in p.flawed)]]


def side_by_side(cfg: PvgConfig) -> bool:
    """Whether the two tiny models warm up at once, each on half the cores.

    On CPU a model this small uses a second core poorly (measured on 2 cores: 1.6-1.7x, not 2x),
    while two processes of one thread each share nothing: the warm start, half of a tiny game's
    time, takes about as long as its longer part. On a GPU both run one after the other, as before.
    """
    both = cfg.prover.model is None and cfg.verifier.model is None
    return both and _device().type == "cpu" and (os.cpu_count() or 1) >= 2


def check_warmstart(cfg: PvgConfig) -> None:
    """What the config alone can refuse of a warm start (checked before a run starts Ray)."""
    if (cfg.prover.model is None or cfg.verifier.model is None) and cfg.data.source != "synthetic":
        raise PvgError(
            "tiny models are warm-started on synthetic problems (they need flawed solutions for the sneaky "
            "role): set data.source=synthetic, or give prover.model and verifier.model (hub ids or paths)"
        )


def hub_sft(cfg: PvgConfig) -> bool:
    """Whether a hub prover is fine-tuned on both roles before the game."""
    return cfg.prover.model is not None and cfg.warmstart.hub_prover_steps > 0


def warm_hub_prover(cfg: PvgConfig, train: list[Problem], test: list[Problem], out: Path, add_bar: AddBar) -> dict:
    """TRL SFT of the hub prover on both roles, with each role sampled on held-out problems before
    and after (the sneaky incorrect rate is what the warm start is for)."""
    from pvg.data.tokenizer import load_tokenizer
    from pvg.game.hub_warmstart import sft_hub_prover
    from pvg.game.models import load_causal_lm

    test = test[: cfg.warmstart.eval_problems]
    kw = dict(tiny=False, max_new_tokens=cfg.prover.max_new_tokens, temperature=cfg.prover.temperature,
              seed=cfg.run.seed, calculator=cfg.prover.calculator, calculator_answer=cfg.prover.calculator_answer)
    tok = load_tokenizer(cfg.prover.model)
    before = evaluate_roles(load_causal_lm(cfg.prover.model, cfg.prover.dtype).to(_device()), tok, test, **kw)
    metrics = sft_hub_prover(cfg, with_flaws(train, cfg.data, cfg.run.seed), out, add_bar)
    after = evaluate_roles(load_causal_lm(out, cfg.prover.dtype).to(_device()), load_tokenizer(out), test, **kw)
    return metrics | {f"before_{k}": v for k, v in before.items()} | after | {"eval_problems": len(test)}


def run_warmstart(cfg: PvgConfig, *, force: bool = False, progress: bool = True) -> WarmStart:
    prover_tiny, verifier_tiny = cfg.prover.model is None, cfg.verifier.model is None
    if not (prover_tiny or verifier_tiny or hub_sft(cfg)):
        return WarmStart(cfg.prover.model, cfg.prover.model, cfg.verifier.model, cfg.verifier.model, {})
    check_warmstart(cfg)
    root = Path(cfg.run.cache_dir) / f"warmstart-{cache_key(cfg)}"
    done = root / "warmstart.json"
    if done.is_file() and not force:
        metrics = json.loads(done.read_text())
        rates = (f" (helpful pass {metrics['helpful_pass_rate']:.0%}, sneaky incorrect "
                 f"{metrics['sneaky_incorrect_rate']:.0%})" if "helpful_pass_rate" in metrics else "")
        console.print(f"warm start: reusing {root}{rates}")
        return _result(cfg, root, metrics)

    cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch.set_num_threads(cores)  # the warm start runs alone: no actor is working yet (on the cores it may use)
    quiet_libraries()
    t0 = time.time()
    sides = load_split(cfg.data, cfg.run.seed)
    train, vtrain, test = warmstart_sides(sides)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    corpus = corpus_texts(train + vtrain + test)
    tok = vtok = None
    if prover_tiny or verifier_tiny:
        tok = train_tokenizer(corpus)
        save_tokenizer(tok, tmp / "tokenizer")
        vtok = tok
    if verifier_tiny and cfg.verifier.tiny.numbers != "digits":
        vtok = train_tokenizer(corpus_texts(vtrain), cfg.verifier.tiny.numbers)
        save_tokenizer(vtok, tmp / "verifier_tokenizer")
    metrics: dict = {"version": __version__, "cache_key": cache_key(cfg), "train_problems": len(train),
                     "verifier_train_problems": len(vtrain)}

    with progress_bars(progress) as add_bar:
        if side_by_side(cfg):
            verifier_job = SideJob(warm_verifier, (cfg, vtok, vtrain, test, tmp), threads=cores // 2)
            torch.set_num_threads(cores - cores // 2)
            try:
                metrics |= warm_prover(cfg, tok, train, test, tmp, verifier_job.relaying(add_bar))
                metrics |= verifier_job.result(add_bar)
            finally:
                verifier_job.stop()
                torch.set_num_threads(cores)
        else:
            if prover_tiny:
                metrics |= warm_prover(cfg, tok, train, test, tmp, add_bar)
            if verifier_tiny:
                metrics |= warm_verifier(cfg, vtok, vtrain, test, tmp, add_bar)
            if hub_sft(cfg):
                metrics |= warm_hub_prover(cfg, train, test, tmp / "prover", add_bar)

    metrics["seconds"] = round(time.time() - t0, 1)
    (tmp / "warmstart.json").write_text(json.dumps(metrics, indent=2))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)  # all or nothing: a killed warm start leaves only a .partial folder
    if prover_tiny:
        console.print(f"warm start: helpful pass {metrics['helpful_pass_rate']:.0%}, sneaky incorrect "
                      f"{metrics['sneaky_incorrect_rate']:.0%} on {metrics['eval_problems']} held-out problems "
                      f"(sampled at T={cfg.prover.temperature}; greedy: {metrics['helpful_pass_rate_greedy']:.0%}, "
                      f"{metrics['sneaky_incorrect_rate_greedy']:.0%}), {metrics['seconds']:.0f}s → {root}")
    if hub_sft(cfg):
        console.print(f"warm start of {cfg.prover.model}: sneaky incorrect {metrics['before_sneaky_incorrect_rate']:.0%}"
                      f" → {metrics['sneaky_incorrect_rate']:.0%}, helpful pass {metrics['before_helpful_pass_rate']:.0%}"
                      f" → {metrics['helpful_pass_rate']:.0%} on {metrics['eval_problems']} held-out problems "
                      f"(sampled at T={cfg.prover.temperature}), {metrics['seconds']:.0f}s → {root}")
    if "verifier_pretrain_heldout_pair_acc" in metrics:
        console.print(f"warm start: the verifier base ranks the reference above a planted flaw in "
                      f"{metrics['verifier_pretrain_heldout_pair_acc']:.0%} of held-out pairs")
    return _result(cfg, root, metrics)


def _result(cfg: PvgConfig, root: Path, metrics: dict) -> WarmStart:
    tok = str(root / "tokenizer")
    if hub_sft(cfg):
        return WarmStart(str(root / "prover"), str(root / "prover"), cfg.verifier.model or str(root / "verifier_base"),
                         cfg.verifier.model or str(verifier_tokenizer_dir(root)), metrics)
    prover = cfg.prover.model or str(root / "prover")
    verifier = cfg.verifier.model or str(root / "verifier_base")
    return WarmStart(
        prover=prover,
        prover_tokenizer=cfg.prover.model or tok,
        verifier_base=verifier,
        verifier_tokenizer=cfg.verifier.model or str(verifier_tokenizer_dir(root)),
        metrics=metrics,
    )



def verifier_tokenizer_dir(root: Path) -> Path:
    """The tiny verifier's tokenizer in a warm-start cache: its own when `numbers` is not the prover's
    `digits`, else the shared one."""
    own = root / "verifier_tokenizer"
    return own if own.is_dir() else root / "tokenizer"
