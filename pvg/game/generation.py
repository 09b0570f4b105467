"""Batched sampling from a causal LM, returning token ids as well as text (PPO needs the ids)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import LogitsProcessorList

from pvg.game.calculator import Calculator


@dataclass
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]  # up to and including EOS when the model stopped by itself
    text: str  # the response decoded without special tokens
    finished: bool  # ended with EOS (not cut at max_new_tokens)
    forced: list[bool] | None = None  # per response token: written by the calculator, not sampled


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    batch_size: int = 256,
    seed: int | None = None,
    calculator: bool = False,
    calculator_answer: bool = True,
) -> list[Sample]:
    """`calculator`: results of `a op b =` are written by `pvg.game.calculator` (and marked as forced), and
    with `calculator_answer` the final `#### N` too."""
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    device = next(model.parameters()).device
    tok.padding_side = "left"
    out: list[Sample] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        calc = Calculator(tok, enc["input_ids"].shape[1], calculator_answer) if calculator else None
        if calc is not None:
            kwargs["logits_processor"] = LogitsProcessorList([calc])
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **kwargs,
        )
        width = enc["input_ids"].shape[1]
        for row in range(len(chunk)):
            mask = enc["attention_mask"][row].bool()
            prompt_ids = enc["input_ids"][row][mask].tolist()
            resp = gen[row, width:].tolist()
            finished = tok.eos_token_id in resp
            if finished:
                resp = resp[: resp.index(tok.eos_token_id) + 1]
            else:
                while resp and resp[-1] == tok.pad_token_id and tok.pad_token_id != tok.eos_token_id:
                    resp.pop()
            text = tok.decode(resp, skip_special_tokens=True)
            forced = [(row, t) in calc.forced for t in range(len(resp))] if calc is not None else None
            out.append(Sample(prompt_ids, resp, text, finished, forced))
    return out
