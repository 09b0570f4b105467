"""A word-level tokenizer trained on our own corpus, with every digit its own token.

Digits as single tokens are what let a tiny model do column arithmetic at all (a BPE merge like
"17" hides the digits), and a closed word vocabulary keeps sequences short. Each token carries its
leading space, so decoding is plain concatenation and round-trips the text exactly: the grader
reads `#### 58` from decoded text, never `# # # # 5 8`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from pvg.roles import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

# A word with its leading space, a digit with its leading space, one symbol, or a newline.
SPLIT_PATTERN = r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\n| +"


def train_tokenizer(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    every_digit = " ".join("0123456789") + "\n" + "0123456789"  # each digit, with and without a space
    tok.train_from_iterator(_with(corpus, every_digit), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        bos_token=BOS,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, EOS, UNK, BOS)],
        clean_up_tokenization_spaces=False,
    )
    fast.padding_side = "left"  # generation batches are left-padded; training code pads explicitly
    return fast


def _with(corpus: Iterable[str], extra: str) -> Iterable[str]:
    yield extra
    yield from corpus


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # many hub causal LMs ship without one
        tok.pad_token = tok.eos_token
    return tok
