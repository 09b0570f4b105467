"""Which planted flaws can the tiny verifier learn to catch at all? One flaw kind at a time.

For each flaw kind, generate fresh problems whose flawed solutions carry only that kind, and train
the run's verifier (from its initial weights) with the most generous signal there is: a label on
every solution token (1 until the first token that departs from the reference, 0 from there on),
read off the score head at every position. Reports, on held-out problems, how often the first
departing token is flagged and how often the final token (the verifier's actual score) is right.
A kind that stays near chance here cannot be caught by the game's outcome-only verifier either:
it is a blind spot that the sneaky prover will find and the pool cannot fix.

    python bench/flaw_learnability.py runs/tiny --steps 400

Appends one JSON line per kind to `bench/results/flaw_learnability.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.config import TinyModelConfig, load_config  # noqa: E402
from pvg.game.models import build_tiny_causal_lm, load_verifier, quiet_libraries  # noqa: E402
from pvg.data.synth import FLAW_KINDS, generate  # noqa: E402
from pvg.data.tokenizer import load_tokenizer  # noqa: E402
from pvg.game.verifier_train import token_logits  # noqa: E402
from pvg.game.warmstart import flaw_token_labels, run_warmstart  # noqa: E402


@torch.no_grad()
def evaluate(model, tok, data) -> dict:
    model.eval()
    first_bad, final = [], []
    for i in range(0, len(data), 128):
        logits, labels, last = token_logits(model, data[i : i + 128], tok.pad_token_id)
        for j in range(len(logits)):
            bad = (labels[j] == 0).nonzero()
            if len(bad):
                first_bad.append(bool(logits[j, bad[0, 0]] < 0))
            final.append(bool((logits[j, last[j]] > 0) == (labels[j, last[j]] > 0.5)))
    model.train()
    return {"first_bad_flagged": sum(first_bad) / len(first_bad), "final_token_acc": sum(final) / len(final)}


def fresh_base(tok, shape: str) -> Path:
    """A randomly initialized causal LM of the given shape, saved where load_verifier can read it."""
    h, layers, heads, inter = (int(x) for x in shape.split(","))
    path = Path(tempfile.mkdtemp(prefix="pvg-learnability-"))
    build_tiny_causal_lm(tok, TinyModelConfig(hidden_size=h, num_layers=layers, num_heads=heads,
                                              intermediate_size=inter), seed=0).save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder (its config and warm start give the verifier)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--problems", type=int, default=4000)
    ap.add_argument("--kinds", default=",".join(FLAW_KINDS))
    ap.add_argument("--tiny", help="HIDDEN,LAYERS,HEADS,INTERMEDIATE: a freshly initialized verifier of that shape "
                    "instead of the warm start's base LM (does depth or width make a kind learnable?)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "flaw_learnability.jsonl")
    args = ap.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    quiet_libraries()
    cfg = load_config(args.run / "config.yaml", [])
    ws = run_warmstart(cfg, progress=False)
    tok = load_tokenizer(ws.verifier_tokenizer)
    d = cfg.data
    for kind in args.kinds.split(","):
        problems = generate(args.problems + 500, seed=12345, min_steps=d.min_steps, max_steps=d.max_steps,
                            flaws_per_problem=1, flaw_kinds=(kind,))
        train = flaw_token_labels(tok, problems[: args.problems], cfg.verifier.max_length)
        held_out = flaw_token_labels(tok, problems[args.problems :], cfg.verifier.max_length)
        torch.manual_seed(0)
        model = load_verifier(fresh_base(tok, args.tiny) if args.tiny else ws.verifier_base, tok.pad_token_id)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
        rng = random.Random(0)
        t0 = time.time()
        for _ in range(args.steps):
            logits, labels, _ = token_logits(model, rng.sample(train, 64), tok.pad_token_id)
            m = labels >= 0
            loss = F.binary_cross_entropy_with_logits(logits[m], labels[m])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        result = {"run": str(args.run), "kind": kind, "steps": args.steps, "lr": args.lr,
                  "base": args.tiny or "warm start",
                  "train_s": round(time.time() - t0, 1), **evaluate(model, tok, held_out)}
        print(json.dumps(result), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
