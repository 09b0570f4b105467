"""Tokenizers shaped like real chat models' (Qwen2, Llama 3), trained here on GSM8K-style text.

The hub path (`prover.model` / `verifier.model`) meets what the tiny path never does: a byte-level
BPE, a chat template, an end-of-turn token that is not the end-of-text token, and no pad token.
A tokenizer of that shape, trained in a second on the problems at hand, lets the CPU tests walk
that path with the real `from_pretrained` code and no hub. Each family copies its model's
pre-tokenizer split, special tokens and chat template (without tools), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# Qwen2's split: every digit its own piece. Llama 3's: up to three digits a piece.
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}%s| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")

_QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_LLAMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class ChatFamily:
    name: str
    split: str  # the pre-tokenizer's regex
    bos: str | None
    eos: str  # the end-of-text token (the tokenizer's eos_token)
    end_of_turn: str  # what ends an assistant turn in the chat template: generation must stop there too
    specials: tuple[str, ...]  # every special token, in id order from 0
    chat_template: str


FAMILIES: dict[str, ChatFamily] = {
    "qwen2": ChatFamily("qwen2", _SPLIT % "", None, "<|endoftext|>", "<|im_end|>",
                        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), _QWEN_TEMPLATE),
    "llama": ChatFamily("llama", _SPLIT % "{1,3}", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                        ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>"), _LLAMA_TEMPLATE),
}


def train_chat_tokenizer(family: str, corpus: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `family`'s shape; no pad token, as the real ones ship."""
    fam = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(fam.split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(fam.specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    others = [t for t in fam.specials if t not in (fam.bos, fam.eos)]
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=fam.bos, eos_token=fam.eos,
                                   additional_special_tokens=others, chat_template=fam.chat_template,
                                   clean_up_tokenization_spaces=False, model_max_length=4096)
