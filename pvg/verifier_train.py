"""Verifier training: pairwise Bradley-Terry on (correct, incorrect) solutions to the same problem.

The loss is TRL `RewardTrainer`'s, term for term: `-logsigmoid(r_c - r_r)` plus its
`center_rewards_coefficient · mean((r_c + r_r)^2)`, which keeps scores centred so that `V` means
the same thing in every round. We call the model directly instead of through `RewardTrainer`
because the verifier is re-initialised and trained from scratch every round inside a Ray actor
with a fixed number of steps, and on two CPU cores the Trainer's per-step machinery costs more
than the forward pass of a 0.1M-parameter model.
"""

from __future__ import annotations

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


@torch.no_grad()
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
    return {"verifier_loss": sum(losses[-k:]) / k, "verifier_pair_acc": sum(accs[-k:]) / k, "verifier_pairs": len(pairs)}
