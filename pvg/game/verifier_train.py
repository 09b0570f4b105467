"""Verifier training: pairwise Bradley-Terry on (correct, incorrect) solutions to the same problem.

The loss is TRL `RewardTrainer`'s, term for term: `-logsigmoid(r_c - r_r)` plus its
`center_rewards_coefficient · mean((r_c + r_r)^2)`, which keeps scores centred so that `V` means
the same thing in every round. We call the model directly instead of through `RewardTrainer`
because the verifier is re-initialised and trained from scratch every round inside a Ray actor
with a fixed number of steps, and on two CPU cores the Trainer's per-step machinery costs more
than the forward pass of a 0.1M-parameter model.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Pair:
    chosen: str  # verifier text of a correct solution
    rejected: str  # verifier text of an incorrect solution to the same problem


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, center_coef: float) -> torch.Tensor:
    loss = -F.logsigmoid(r_chosen - r_rejected).mean()
    if center_coef > 0:
        loss = loss + center_coef * torch.mean((r_chosen + r_rejected) ** 2)
    return loss


@torch.no_grad()  # scoring never trains: no graph, whoever calls it
def score_texts(model, tok, texts: Sequence[str], max_length: int, batch_size: int = 256) -> list[float]:
    model.eval()
    tok.padding_side = "right"
    device = next(model.parameters()).device
    scores: list[float] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length, add_special_tokens=False).to(device)
        scores.extend(model(**enc).logits.squeeze(-1).float().tolist())
    return scores


def phase_steps(n_pairs: int, train_steps: int, train_epochs: float | None, batch_pairs: int) -> int:
    """Steps of a verifier phase. A fixed count under-fits once the pool outgrows it: on the tiny
    game's round-3 pool (~10k pairs), 400 steps fit 91% of the pairs and scored AUROC 0.78 on problems
    they never held; 4 passes (1279 steps) fit 99.8% and scored 0.86 (docs/results.md#verifier-epochs)."""
    if train_epochs is None:
        return train_steps
    return max(train_steps, math.ceil(train_epochs * n_pairs / batch_pairs))


def train_verifier(
    model,
    tok,
    pairs: Sequence[Pair],
    *,
    steps: int,
    batch_pairs: int,
    lr: float,
    center_coef: float,
    max_length: int,
    seed: int,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict:
    """A fixed number of steps, whatever the pool size: the same optimization every round."""
    if not pairs:
        raise ValueError("no (correct, incorrect) pairs to train the verifier on")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    tok.padding_side = "right"
    model.train()
    order: list[int] = []
    losses, accs = [], []
    for step in range(steps):
        if len(order) < batch_pairs:
            more = list(range(len(pairs)))
            rng.shuffle(more)
            order += more
        batch = [pairs[order.pop()] for _ in range(min(batch_pairs, len(pairs)))]
        enc = tok([p.chosen for p in batch] + [p.rejected for p in batch], return_tensors="pt", padding=True,
                  truncation=True, max_length=max_length, add_special_tokens=False).to(next(model.parameters()).device)
        r = model(**enc).logits.squeeze(-1).float()
        r_c, r_r = r[: len(batch)], r[len(batch) :]
        loss = bt_loss(r_c, r_r, center_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        accs.append((r_c > r_r).float().mean().item())
        if on_step:
            on_step(step, losses[-1], accs[-1])
    model.eval()
    k = max(1, min(20, steps))
    return {"verifier_loss": sum(losses[-k:]) / k, "verifier_pair_acc": sum(accs[-k:]) / k, "verifier_pairs": len(pairs),
            "verifier_steps": steps}


@dataclass(frozen=True)
class TokenLabels:
    """One solution with a label per token: -100 on the question (not judged), 1 on every solution
    token before the first one that departs from the reference solution, 0 from there on."""

    input_ids: list[int]
    labels: list[int]


def departure_labels(tok, question_text: str, text: str, reference: str, max_length: int) -> TokenLabels:
    """Label `text` (a verifier text: question, then solution) against `reference` (the reference
    solution's verifier text), by the first character where they differ."""
    cut = next((i for i, (a, b) in enumerate(zip(text, reference)) if a != b), None)
    if cut is None and len(text) != len(reference):
        cut = min(len(text), len(reference))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length)
    start = len(question_text)
    labels = [-100 if end <= start else int(cut is None or end <= cut) for _, end in enc["offset_mapping"]]
    return TokenLabels(list(enc["input_ids"]), labels)


def token_logits(model, batch: Sequence[TokenLabels], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The score head read at every position: (logits, labels, index of each sequence's last token)."""
    device = next(model.parameters()).device
    n = max(len(x.input_ids) for x in batch)
    ids = torch.tensor([x.input_ids + [pad_id] * (n - len(x.input_ids)) for x in batch], device=device)
    labels = torch.tensor([x.labels + [-100] * (n - len(x.labels)) for x in batch], dtype=torch.float, device=device)
    lengths = torch.tensor([len(x.input_ids) for x in batch], device=device)
    attention = (torch.arange(n, device=device)[None, :] < lengths[:, None]).long()
    hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state
    return model.score(hidden).squeeze(-1).float(), labels, lengths - 1


def train_verifier_tokens(
    model,
    examples: Sequence[TokenLabels],
    *,
    pad_id: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict:
    """Process supervision on solutions whose first wrong step is known: binary cross-entropy on
    every solution token, so the score at each position says "no mistake so far".

    An outcome label (one per solution) is a weak signal for learning *where* to look: measured
    with bench/flaw_learnability.py, a 64x2 verifier catches a misread quantity (a number copied
    wrongly from the question) in 15% of cases after 600 steps, and in 87% (final score right 99%)
    after 3000 steps of these labels, once attention that compares the solution with the question
    has formed. The last token's logit is the verifier's score, so these weights start the game's
    pairwise training where it needs to be.
    """
    if not examples:
        raise ValueError("no labelled solutions to train the verifier on")
    pool = list(examples)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * max(0.05, 1 - s / steps))
    model.train()
    losses, accs = [], []
    for step in range(steps):
        batch = rng.sample(pool, min(batch_size, len(pool)))
        logits, labels, last = token_logits(model, batch, pad_id)
        judged = labels >= 0
        loss = F.binary_cross_entropy_with_logits(logits[judged], labels[judged])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        rows = torch.arange(len(batch), device=last.device)
        final_right = (logits[rows, last] > 0) == (labels[rows, last] > 0.5)
        losses.append(loss.item())
        accs.append(final_right.float().mean().item())
        if on_step:
            on_step(step, losses[-1], accs[-1])
    model.eval()
    k = max(1, min(50, steps))
    return {"verifier_token_loss": sum(losses[-k:]) / k, "verifier_final_acc": sum(accs[-k:]) / k}
