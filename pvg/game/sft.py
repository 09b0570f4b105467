"""Supervised fine-tuning on (prompt, completion) pairs, loss on the completion only.

We tried TRL's `SFTTrainer` here first: it trains these models correctly, but at this scale on two
CPU cores its Trainer machinery and per-step metrics cost ~40% more time per step than this loop,
and the warm start has a five-minute budget. The loop is the nanoGPT one: length-bucketed batches
(little padding), AdamW, linear warmup then cosine decay, gradient clipping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str  # the tokenizer's EOS is appended here


def encode(tok, examples: Sequence[Example], max_length: int) -> list[tuple[list[int], int]]:
    """Token ids per example and where the completion starts (everything before is masked out)."""
    out = []
    for ex in examples:
        p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
        c = tok(ex.completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = (p + c)[:max_length]
        out.append((ids, len(p)))
    return out


def batches(encoded: list[tuple[list[int], int]], batch_size: int, rng: random.Random):
    """Endless stream of batches; each drawn from a window of similar lengths to keep padding low."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    while True:
        rng.shuffle(chunks)
        for chunk in chunks:
            yield [encoded[i] for i in chunk]
        # reshuffle within neighbouring lengths so batches differ between epochs
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + rng.random() * 8)
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(batch: list[tuple[list[int], int]], pad_id: int, mask_prompt: bool = True) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attn[row, : len(ids)] = 1
        first = start if mask_prompt else 0
        labels[row, first : len(ids)] = torch.tensor(ids[first:])
    return {"input_ids": input_ids, "attention_mask": attn, "labels": labels}


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_lm(
    model: torch.nn.Module,
    encoded: list[tuple[list[int], int]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    pad_id: int,
    seed: int,
    mask_prompt: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    losses = []
    stream = batches(encoded, batch_size, rng)
    device = next(model.parameters()).device
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, warmup, lr)
        batch = {k: v.to(device) for k, v in collate(next(stream), pad_id, mask_prompt).items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if on_step:
            on_step(step, losses[-1])
    model.eval()
    return losses
