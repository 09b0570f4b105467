"""Small Hugging Face folders of real architectures (Qwen2, Llama), built here, for the hub path without a hub.

`prover.model` and `verifier.model` take a hub id or a local folder through `from_pretrained`; a
folder built by `build_local_model` is one a hub download would be, only small: the family's
config class, a tokenizer of the family's shape (`pvg.data.chat_tokenizer`: byte-level BPE, chat
template, an end-of-turn token apart from EOS, no pad token), a generation_config listing both
stop tokens as the real instruct models' do, and safetensors weights from `save_pretrained`.

A model fresh from its config writes noise, and a game whose prover never answers correctly has
no (correct, incorrect) pair for its verifier. So the folder is pretrained briefly on the problems
it is given, as chat turns (either role's system prompt, question, reference solution): a stand-in
for the GSM8K a real model has seen, and for an instruct model that solves a problem whatever its
system prompt asks. Sampled at temperature 1 it then answers some problems right and some
wrong, which is all the game's plumbing needs; it is no measure of anything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from pvg.data.chat_tokenizer import FAMILIES, train_chat_tokenizer
from pvg.data.problems import Problem
from pvg.data.roles import SYSTEM_PROMPTS, chat_prompt
from pvg.data.tokenizer import save_tokenizer
from pvg.game.sft import train_lm


@dataclass(frozen=True)
class Shape:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention, as both families use
    intermediate_size: int = 128
    vocab_size: int = 2048
    max_positions: int = 2048


def model_for(family: str, tok, shape: Shape):
    fam = FAMILIES[family]
    common = dict(vocab_size=len(tok), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
                  num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
                  num_key_value_heads=shape.num_kv_heads, max_position_embeddings=shape.max_positions,
                  eos_token_id=tok.convert_tokens_to_ids(fam.eos),
                  bos_token_id=tok.convert_tokens_to_ids(fam.bos) if fam.bos else None,
                  pad_token_id=None, tie_word_embeddings=True)
    if family == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common))
    return LlamaForCausalLM(LlamaConfig(**common))


def chat_examples(tok, problems: list[Problem], max_length: int) -> list[tuple[list[int], int]]:
    """(token ids, where the answer starts) per problem and role: the role's system prompt, the question
    as the user turn, the reference solution as the assistant turn, closed by the template's end of
    turn. Both roles get the reference: an instruct model asked to be subtly wrong mostly solves the
    problem anyway, which is what the sneaky warm start has to change."""
    out = []
    for p in problems:
        for role in SYSTEM_PROMPTS:
            prompt = chat_prompt(tok, p.question, role)
            full = tok.apply_chat_template(
                [{"role": "system", "content": SYSTEM_PROMPTS[role]}, {"role": "user", "content": p.question},
                 {"role": "assistant", "content": p.reference or f"#### {p.answer}"}], tokenize=False)
            ids = tok(full, add_special_tokens=False)["input_ids"][:max_length]
            out.append((ids, len(tok(prompt, add_special_tokens=False)["input_ids"])))
    return out


def corpus(problems: list[Problem]) -> list[str]:
    return [*SYSTEM_PROMPTS.values(), *(t for p in problems for t in (p.question, p.reference or ""))]


def build_local_model(out: str | Path, family: str, problems: list[Problem], *, shape: Shape = Shape(),
                      pretrain_steps: int = 200, batch_size: int = 16, lr: float = 3e-3, seed: int = 0) -> dict:
    """Write a hub-style folder of `family` to `out`; returns what it is (for the script's report)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    out = Path(out)
    fam = FAMILIES[family]
    tok = train_chat_tokenizer(family, corpus(problems), shape.vocab_size)
    torch.manual_seed(seed)
    model = model_for(family, tok, shape)
    losses = []
    if pretrain_steps:
        examples = chat_examples(tok, problems, shape.max_positions)
        random.Random(seed).shuffle(examples)
        losses = train_lm(model, examples, steps=pretrain_steps, batch_size=batch_size, lr=lr,
                          warmup=min(20, pretrain_steps // 5), pad_id=tok.eos_token_id, seed=seed)
    stops = [tok.convert_tokens_to_ids(fam.end_of_turn), tok.eos_token_id]
    model.generation_config = GenerationConfig(bos_token_id=model.config.bos_token_id, eos_token_id=stops,
                                               do_sample=True, temperature=1.0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    return {"family": family, "path": str(out), "params": sum(p.numel() for p in model.parameters()),
            "vocab": len(tok), "pretrain_steps": pretrain_steps,
            "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4) if losses else None}
