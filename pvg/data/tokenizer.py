"""Tokenizers trained on our own corpus: word-level for the prover, digits always their own tokens.

Digits as single tokens are what let a tiny model do column arithmetic at all (a BPE merge like
"17" hides the digits), and a closed word vocabulary keeps sequences short. Each token carries its
leading space, so decoding is plain concatenation and round-trips the text exactly: the grader
reads `#### 58` from decoded text, never `# # # # 5 8`.

A tiny *verifier* never computes; it compares. Most wrong solutions it must catch copy one number
wrongly (a misread quantity, a stale result), and checking that takes one token-equality test when
each number is one token, against a digit-by-digit alignment when it is several. So the verifier
may have its own tokenizer (`verifier.tiny.numbers: whole`): BPE over the same pre-tokens, with
numbers kept whole as pre-tokens, which merges every number of the corpus into a single token and
splits any other number into known pieces (never `<unk>`, which a sneaky prover could hide behind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Literal

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from pvg.data.roles import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

Numbers = Literal["digits", "whole"]

# A word with its leading space, a digit (or a whole number) with its leading space, one symbol, or a newline.
SPLIT_PATTERN = r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\n| +"
WHOLE_NUMBER_PATTERN = r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|\n| +"
# Every digit, with and without a space, so no number is ever out of vocabulary.
EVERY_DIGIT = " ".join("0123456789") + "\n" + "0123456789"
# Far above what a synthetic corpus needs (~600): BPE stops merging when nothing is left to merge.
BPE_MAX_VOCAB = 8192


def train_tokenizer(corpus: Iterable[str], numbers: Numbers = "digits") -> PreTrainedTokenizerFast:
    if numbers == "digits":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
        trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    else:
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(WHOLE_NUMBER_PATTERN), behavior="isolated")
        trainer = trainers.BpeTrainer(special_tokens=SPECIAL_TOKENS, vocab_size=BPE_MAX_VOCAB, min_frequency=1,
                                      show_progress=False)
    tok.decoder = decoders.Fuse()
    tok.train_from_iterator(_with(corpus, EVERY_DIGIT), trainer=trainer)
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


# A class every supported transformers version knows: 5.x writes `TokenizersBackend`, which 4.x rejects
# ("Tokenizer class TokenizersBackend does not exist"), and both read a plain tokenizer.json with this one.
PORTABLE_CLASS = "PreTrainedTokenizerFast"


def save_tokenizer(tok, folder: str | Path) -> None:
    """`save_pretrained`, then the tokenizer_config.json rewritten to load under 4.x as well as 5.x."""
    tok.save_pretrained(str(folder))
    make_portable(folder)


def make_portable(folder: str | Path) -> None:
    """What 5.x writes that 4.x misreads: the class name, and its extra special tokens as a list (4.x
    takes `extra_special_tokens` for a dict of named tokens; both read `additional_special_tokens`)."""
    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = PORTABLE_CLASS
    extra = cfg.get("extra_special_tokens")
    if isinstance(extra, list):
        del cfg["extra_special_tokens"]
        cfg["additional_special_tokens"] = list(dict.fromkeys([*cfg.get("additional_special_tokens", []), *extra]))
    cfg.pop("backend", None)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # many hub causal LMs ship without one
        tok.pad_token = tok.eos_token
    return tok
