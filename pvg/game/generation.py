"""Batched sampling from a causal LM, returning token ids as well as text (PPO needs the ids)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import LogitsProcessorList

from pvg.game.calculator import Calculator


# What ends an assistant turn in the chat templates of the families we know (Qwen/ChatML, Llama 3, Gemma,
# Phi): a chat model stops there, and its eos_token is often another token (Qwen2.5 base: <|endoftext|>).
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def stop_token_ids(tok, model=None) -> list[int]:
    """Every token that ends a solution: the tokenizer's EOS, the model's generation_config EOS ids (a
    list for chat models), and the end-of-turn token its chat template writes."""
    ids = [tok.eos_token_id]
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    ids += extra if isinstance(extra, (list, tuple)) else [extra]
    template = getattr(tok, "chat_template", None) or ""
    vocab = tok.get_vocab()
    ids += [vocab[t] for t in END_OF_TURN if t in template and t in vocab]
    return list(dict.fromkeys(i for i in ids if i is not None))


@dataclass
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]  # up to and including the stop token (EOS, end of turn) when the model stopped by itself
    text: str  # the response decoded without special tokens
    finished: bool  # ended with a stop token (not cut at max_new_tokens)
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
    stops = stop_token_ids(tok, model)
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
            eos_token_id=stops,
            **kwargs,
        )
        width = enc["input_ids"].shape[1]
        for row in range(len(chunk)):
            mask = enc["attention_mask"][row].bool()
            prompt_ids = enc["input_ids"][row][mask].tolist()
            resp = gen[row, width:].tolist()
            end = next((t for t, i in enumerate(resp) if i in stops), None)
            finished = end is not None
            if finished:
                resp = resp[: end + 1]
            else:
                while resp and resp[-1] == tok.pad_token_id and tok.pad_token_id not in stops:
                    resp.pop()
            text = tok.decode(resp, skip_special_tokens=True)
            forced = [(row, t) in calc.forced for t in range(len(resp))] if calc is not None else None
            out.append(Sample(prompt_ids, resp, text, finished, forced))
    return out
