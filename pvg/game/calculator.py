"""A calculator in the prover's decoding loop: when a line reaches `a op b =`, the result is written for it.

Why: GSM8K's own solutions were sampled this way (Cobbe et al. 2021, the `<<a*b=c>>` annotations
are calculator calls), and at our scale it is what keeps the game about reasoning. Measured with
`bench/flaw_learnability.py`: a tiny verifier learns to catch a wrong operation or a dropped step
in a few hundred steps but never a wrong sum (first wrong token flagged 1% of the time), and 77%
of the initial prover's incorrect solutions were such slips of sampling. With the calculator every
line's arithmetic is right, so a solution is wrong only by its choices (which numbers, which
operation, which step), the thing a verifier can learn to check and a sneaky prover must hide.

It also writes the final answer (`answer=True`, `prover.calculator_answer`): after a line opens
with `####`, the last result the solution computed. Measured: once every line's arithmetic is
right, the prover's own clerical slip is copying that result wrongly into `#### N` (in one game,
half of the last round's wrong solutions that fooled the verifier), and a tiny verifier barely
learns to see it. Judges taught on planted miscopied answers (`data.flaw_kinds: [...,
miscopied_answer]`, three judging recipes) caught 56-69% of held-out ones, where the same judges
caught 68-94% of misread numbers; and in a game whose sneaky role was taught them too, 65-87% of
its wrong solutions were miscopied answers in every round, AUROC 0.65 -> 0.59 -> 0.79 -> 0.71 in
four rounds. Like a wrong sum, a blind spot that leaves the game about clerical slips.

Forced tokens are not the policy's choices: `generate` reports them so PPO leaves them out of the
policy loss and the KL penalty.
"""

from __future__ import annotations

import re
from fractions import Fraction

import torch

from pvg.data.solution_check import CALC, calc_value

_NUM = r"-?\d+(?:\.\d+)?"
# `12 + 5 =` at the end of the text (compact lines), or `<<12+5=` (GSM8K calculator annotations).
_COMPACT = re.compile(rf"({_NUM}) ?([-+*/]) ?({_NUM}) ?=$")
_ANNOTATION = re.compile(rf"<<({_NUM})([-+*/])({_NUM})=$")


def format_number(x: Fraction) -> str | None:
    """Integers as integers, terminating decimals as decimals (up to 4 places); None otherwise."""
    if x.denominator == 1:
        return str(x.numerator)
    scaled = x * 10**4
    if scaled.denominator != 1:
        return None
    return f"{float(x):.4f}".rstrip("0").rstrip(".")


def completion(text: str) -> str | None:
    """What the calculator writes after `text`, or None when the text does not end in a calculation."""
    for pattern, before, after in ((_ANNOTATION, "", ">>"), (_COMPACT, " ", "\n")):
        m = pattern.search(text)
        if m:
            value = calc_value(m.group(2), Fraction(m.group(1)), Fraction(m.group(3)))
            shown = None if value is None else format_number(value)
            return None if shown is None else before + shown + after
    return None


_ANSWER_LINE = re.compile(r"(?:^|\n)####$")


def answer_completion(response: str) -> str | None:
    """What the calculator writes after a response that has just opened its `####` answer line: the
    last result it computed (`12 + 5 = 17`, or `<<12+5=17>>`); None before that line, or with no
    calculation to repeat."""
    if not _ANSWER_LINE.search(response):
        return None
    calcs = list(CALC.finditer(response))
    return f" {calcs[-1].group(4)}" if calcs else None


class Calculator:
    """A `LogitsProcessor`: forces the calculator's tokens, one per step, and records where it did.

    Only rows whose last token ends in `=` are decoded (a few per step), so sampling stays fast.
    """

    LOOKBACK = 48  # tokens decoded to find the current line: longer than any `a op b =`

    def __init__(self, tok, prompt_width: int, answer: bool = True):
        self.tok = tok
        self.prompt_width = prompt_width
        vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
        self.eq_ids = {i for i, t in enumerate(vocab) if t is not None and t.rstrip().endswith("=")}
        self.hash_ids = {i for i, t in enumerate(vocab) if t is not None and t.endswith("#")} if answer else set()
        self.queue: dict[int, list[int]] = {}
        self.forced: set[tuple[int, int]] = set()  # (row, response position)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        for row in range(input_ids.shape[0]):
            text = None if row in self.queue else self._completion(input_ids[row])
            if text is not None:
                ids = self.tok(text, add_special_tokens=False)["input_ids"]
                if ids and self.tok.unk_token_id not in ids:
                    self.queue[row] = ids
            pending = self.queue.get(row)
            if pending:
                forced = pending.pop(0)
                scores[row, :] = float("-inf")
                scores[row, forced] = 0.0
                self.forced.add((row, step))
                if not pending:
                    del self.queue[row]
        return scores

    def _completion(self, ids: torch.LongTensor) -> str | None:
        """What to write after this row's text, decoded only when its last token could call for it."""
        last = int(ids[-1])
        if last in self.eq_ids:
            tail = self.tok.decode(ids[-self.LOOKBACK:].tolist(), skip_special_tokens=True)
            return completion(tail.rsplit("\n", 1)[-1])
        if last in self.hash_ids:
            return answer_completion(self.tok.decode(ids[self.prompt_width:].tolist(), skip_special_tokens=True))
        return None
