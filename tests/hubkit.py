"""Hub-style model folders and GSM8K data for the tests of the hub path (real `from_pretrained`, no hub).

GSM8K comes from `../shared/data/gsm8k/` beside the repository when it is there (this machine), and
is generated in GSM8K's format otherwise (CI clones the repository elsewhere): either way the game
reads a GSM8K JSONL through `data.source: jsonl`, and nothing is skipped for want of the real file.
`PVG_TEST_GSM8K=generated` takes the generated problems here too, to see what CI sees.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pvg.data.problems import Problem, load_jsonl
from pvg.data.synth import generate
from pvgrun import REPO

GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


def gsm8k_problems(n: int, seed: int = 0) -> tuple[list[Problem], str]:
    """`n` short GSM8K problems with one-digit answers (a tiny model guesses some right, so the first
    pool holds correct and incorrect solutions), and where they came from."""
    train = GSM8K / "train.jsonl"
    if train.is_file() and os.environ.get("PVG_TEST_GSM8K") != "generated":
        small = [p for p in load_jsonl(train) if p.answer.isdigit() and int(p.answer) < 10]
        return sorted(small, key=lambda p: (len(p.reference or ""), p.id))[:n], str(train)
    made = [p for p in generate(8 * n, seed=seed, min_steps=2, max_steps=2, max_start=9, max_operand=5)
            if int(p.answer) < 10][:n]
    return made, "generated (pvg.data.synth, GSM8K format)"


def write_gsm8k_jsonl(problems: list[Problem], path: Path) -> Path:
    """GSM8K's own format: `question`, and `answer` with `<<a op b=c>>` annotations and a final `#### N`."""
    path.write_text("".join(json.dumps({"question": p.question, "answer": p.reference}) + "\n" for p in problems))
    return path
