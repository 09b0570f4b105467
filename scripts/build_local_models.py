"""Build small hub-style model folders (Qwen2, Llama) on GSM8K-format problems, for `prover.model` /
`verifier.model` without a hub.

    .venv/bin/python scripts/build_local_models.py --data ../shared/data/gsm8k/train.jsonl -o models

writes models/qwen2/ and models/llama/ (each: config.json, generation_config.json, model.safetensors,
tokenizer files), and models/gsm8k.jsonl, the problems they were pretrained on, in GSM8K's format (the
data configs/hub-cpu.yaml plays on); see pvg/game/local_hub.py for what the folders are and why they
are pretrained a little.
Without --data, GSM8K-format problems are generated (pvg.data.synth, with `<<a op b=c>>` annotations).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pvg.data.problems import load_jsonl
from pvg.data.synth import generate
from pvg.game.local_hub import Shape, build_local_model
from pvg.game.models import quiet_libraries


def shortest(problems, n: int):
    """The `n` problems with the shortest reference solutions: what a tiny model can learn in seconds."""
    return sorted(problems, key=lambda p: len(p.reference or ""))[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, help="folder to write one sub-folder per family into")
    ap.add_argument("--data", help="GSM8K-format JSONL (question, answer ending in '#### N'); default: generated")
    ap.add_argument("--problems", type=int, default=200, help="how many (shortest) problems to pretrain on")
    ap.add_argument("--family", action="append", choices=["qwen2", "llama"], help="repeatable; default: both")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-answer", type=int, default=None,
                    help="keep only problems whose answer is a whole number below this (small answers: a tiny "
                         "model guesses some right)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    quiet_libraries()
    if args.data:
        problems = load_jsonl(args.data)
        if args.max_answer is not None:
            problems = [p for p in problems if p.answer.isdigit() and int(p.answer) < args.max_answer]
        problems = shortest(problems, args.problems)
    else:
        problems = generate(args.problems, seed=args.seed, min_steps=2, max_steps=3)
    shape = Shape(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads,
                  intermediate_size=2 * args.hidden, vocab_size=args.vocab)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "gsm8k.jsonl").open("w") as f:
        for p in problems:
            f.write(json.dumps({"question": p.question, "answer": p.reference}) + "\n")
    for family in args.family or ["qwen2", "llama"]:
        info = build_local_model(out / family, family, problems, shape=shape,
                                 pretrain_steps=args.pretrain_steps, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed)
        print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
