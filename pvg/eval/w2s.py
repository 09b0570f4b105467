"""Weak-to-strong generalization (Burns et al. 2023): does a larger model trained on a round's
verifier's judgments end up better than that verifier, and how much of the gap to ground truth
does it close?

For a round k, its pool's solutions (the verifier's half of the problems) are split by problem,
70% to train and 30% to test. The weak supervisor is round k's verifier: its labels are its accept
decisions (score ≥ the round's acceptance threshold). The strong student is a larger model, by
default the run's initial prover (about eight times the tiny verifier) with a fresh one-logit head,
trained with the verifier's recipe (steps, batch, learning rate; `--steps` changes the steps) twice from the same start: on the
weak labels (w2s) and on the true correctness (the ceiling). On the test split:

    PGR = (acc_w2s − acc_weak) / (acc_ceiling − acc_weak)

1 means the student recovered all of the gap, 0 that it only imitated the verifier (undefined, and
reported as null, when the ceiling does not beat the weak verifier). Also reported:
the student's accuracy before training (its gain is what training on weak labels bought) and the
CAPA κp of weak and strong (accept probabilities; high κp with a high PGR is unlikely: a student
that learned the verifier's mistakes shares them).
"""

from __future__ import annotations

import hashlib
import random

import torch

from pvg.errors import PvgError
from pvg.eval.sampling import device
from pvg.eval.similarity import accept_probability, capa_binary
from pvg.eval.store import EvalRun
from pvg.data.roles import verifier_text
from pvg.game.verifier_train import score_texts


def held_out(problem_id: str) -> bool:
    return int(hashlib.sha256(f"w2s/{problem_id}".encode()).hexdigest()[:8], 16) / 16**8 < 0.3


def student_base(run: EvalRun, student: str | None) -> tuple[str, str]:
    """The student's starting weights and tokenizer: `--student`, else the run's initial prover."""
    if student:
        return student, student
    if run.cfg.prover.model:
        return run.cfg.prover.model, run.cfg.prover.model
    return str(run.warmstart("prover", "the w2s student")), str(run.warmstart("tokenizer", "the w2s student"))


def train_student(base: str, tok, texts: list[str], labels: list[bool], cfg, seed: int, steps: int | None = None):
    """A fresh classifier from `base`, trained with binary cross-entropy on (text, label)."""
    from pvg.game.models import load_verifier

    model = load_verifier(base, tok.pad_token_id, cfg.dtype, seed).to(device())
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    batch = 2 * cfg.batch_pairs
    tok.padding_side = "right"
    model.train()
    order: list[int] = []
    for _ in range(steps or cfg.train_steps):
        if len(order) < batch:
            more = list(range(len(texts)))
            rng.shuffle(more)
            order += more
        idx = [order.pop() for _ in range(min(batch, len(texts)))]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                  max_length=cfg.max_length, add_special_tokens=False).to(device())
        logit = model(**enc).logits.squeeze(-1).float()
        y = torch.tensor([float(labels[i]) for i in idx], device=logit.device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return model


def _accuracy(decisions: list[bool], truth: list[bool]) -> float:
    return sum(d == t for d, t in zip(decisions, truth)) / len(truth)


def w2s_round(run: EvalRun, k: int, student: str | None, seed: int, steps: int | None = None) -> dict:
    from pvg.game.models import load_verifier, quiet_libraries
    from pvg.data.tokenizer import load_tokenizer

    quiet_libraries()
    rows = [r for r in run.pool(k) if r["verifier_score"] is not None]
    train = [r for r in rows if not held_out(r["problem_id"])]
    test = [r for r in rows if held_out(r["problem_id"])]
    if not train or not test:
        raise PvgError(f"round {k}'s pool is too small to split into train and test problems")
    threshold = run.threshold(k, [r["verifier_score"] for r in rows], [bool(r["correct"]) for r in rows],
                              [r["role"] for r in rows])
    text = lambda r: verifier_text(r["question"], r["text"])  # noqa: E731
    truth = [bool(r["correct"]) for r in test]
    weak_test = [r["verifier_score"] >= threshold for r in test]
    base, tok_path = student_base(run, student)
    tok = load_tokenizer(tok_path)
    cfg = run.cfg.verifier
    untrained = load_verifier(base, tok.pad_token_id, cfg.dtype, seed).to(device())
    acc_untrained = _accuracy([x >= 0 for x in score_texts(untrained, tok, [text(r) for r in test], cfg.max_length)], truth)
    del untrained
    results = {}
    for name, labels in (("w2s", [r["verifier_score"] >= threshold for r in train]),
                         ("ceiling", [bool(r["correct"]) for r in train])):
        model = train_student(base, tok, [text(r) for r in train], labels, cfg, seed, steps)
        logits = score_texts(model, tok, [text(r) for r in test], cfg.max_length)
        results[name] = {"accuracy": _accuracy([x >= 0 for x in logits], truth), "logits": logits}
    acc_weak = _accuracy(weak_test, truth)
    gap = results["ceiling"]["accuracy"] - acc_weak
    # PGR measures how much of a gap the student closes: with no gap (the student trained on the truth
    # does no better than the weak verifier) there is nothing to recover, and the ratio means nothing.
    pgr = (results["w2s"]["accuracy"] - acc_weak) / gap if gap > 0 else None
    kappa = None
    if 0 < sum(truth) < len(truth):
        kappa = capa_binary([accept_probability(r["verifier_score"], threshold) for r in test],
                            [accept_probability(x, 0.0) for x in results["w2s"]["logits"]], truth)
    return {"round": k, "train": len(train), "test": len(test), "acc_weak": acc_weak,
            "acc_w2s": results["w2s"]["accuracy"], "acc_ceiling": results["ceiling"]["accuracy"],
            "acc_student_untrained": acc_untrained, "student_gain": results["w2s"]["accuracy"] - acc_untrained,
            "pgr": pgr, "capa_weak_strong": kappa}


def w2s(run: EvalRun, student: str | None, seed: int, advance=lambda **_: None, steps: int | None = None) -> dict:
    rows = []
    for k in run.rounds(needs=("verifier",), what="weak-to-strong"):
        rows.append(w2s_round(run, k, student, seed, steps))
        advance()
    return {"student": student or "the run's initial prover", "steps": steps or run.cfg.verifier.train_steps,
            "rounds": rows}


def figure(result: dict, dpi: int = 100) -> bytes:
    from pvg.eval.figures import line_figure

    series = {name: [(r["round"], r[key]) for r in result["rounds"]] for name, key in (
        ("weak (the round's verifier)", "acc_weak"), ("strong on weak labels", "acc_w2s"),
        ("strong on true labels", "acc_ceiling"), ("strong, untrained", "acc_student_untrained"))}
    return line_figure(series, "weak-to-strong: accuracy on held-out pool solutions", "accuracy", dpi=dpi)
