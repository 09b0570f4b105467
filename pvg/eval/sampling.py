"""Sampling a round's prover and scoring with a round's verifier, in this process.

The game samples through Ray actors; an evaluation runs after the game, on one machine, so it
loads the checkpoints here (on the GPU when there is one) and uses the very functions the actors
use (`pvg.game.generation.generate`, `pvg.game.verifier_train.score_texts`, `pvg.data.roles`), so a solution
sampled here is one the game's prover could have written and its score is the game's score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pvg.data.grading import extract_answer, is_correct
from pvg.data.roles import prover_prompt, verifier_text


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Solution:
    problem_id: str
    role: str
    text: str
    answer: str | None  # the extracted final answer, None when it states none
    correct: bool
    tokens: int


def sample(run, k: int, problems: list, roles: list[str], n: int, seed: int, greedy: bool = False,
           prompt=None) -> list[Solution]:
    """n solutions per (problem, role) pair from round k's prover, in problem-major order.

    `prompt(tok, question, role)` overrides the game's prompt (prompt-sensitivity uses it).
    """
    from pvg.game.generation import generate

    model, tok = run.prover(k)
    model.to(device())
    tiny = run.cfg.prover.model is None
    make = prompt or (lambda t, q, r: prover_prompt(t, q, r, tiny))
    pairs = [(p, r) for p in problems for r in roles for _ in range(n)]
    out = generate(model, tok, [make(tok, p.question, r) for p, r in pairs], max_new_tokens=run.cfg.prover.max_new_tokens,
                   temperature=run.cfg.prover.temperature, top_p=run.cfg.prover.top_p, greedy=greedy, seed=seed,
                   calculator=run.cfg.prover.calculator)
    return [Solution(p.id, r, s.text, extract_answer(s.text), is_correct(s.text, p.answer), len(s.response_ids))
            for (p, r), s in zip(pairs, out)]


def score(run, k: int, questions: list[str], solutions: list[str]) -> list[float]:
    """Round k's verifier scores, exactly as the game scored (same text format, same truncation)."""
    from pvg.game.verifier_train import score_texts

    model, tok = run.verifier(k)
    model.to(device())
    return score_texts(model, tok, [verifier_text(q, s) for q, s in zip(questions, solutions)],
                       run.cfg.verifier.max_length)
