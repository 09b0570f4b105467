"""How well the warm start's judge catches each kind of planted flaw, without playing a game.

Runs the verifier's side of the warm start (`pvg.game.warmstart.warm_verifier`: base LM, then judging)
exactly as `pvg train` does, on one core as in the side-by-side warm start, then scores the
reference solution against each planted flaw of held-out test problems and reports, per flaw
kind, how often the reference ranks above the flaw:

    python bench/judge_by_flaw.py configs/tiny.yaml --seeds 0 1 2
    python bench/judge_by_flaw.py configs/tiny.yaml --seeds 2 --set warmstart.verifier_pretrain_steps=6000 \
        --set warmstart.verifier_pretrain_batch_size=32         # the previous judging recipe

Every game was as good as its judge (docs/results.md#judging-recipe), and a seed takes ~7.5 minutes here against
~13 for a game. Each result is appended to `bench/results/judge_by_flaw.jsonl` with its recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.config import load_config  # noqa: E402
from pvg.data.dataset import load_split  # noqa: E402
from pvg.game.models import load_verifier, quiet_libraries  # noqa: E402
from pvg.data.roles import verifier_text  # noqa: E402
from pvg.data.tokenizer import train_tokenizer  # noqa: E402
from pvg.game.verifier_train import score_texts  # noqa: E402
from pvg.game.warmstart import corpus_texts, warm_verifier  # noqa: E402


def judge_by_flaw(config: str, overrides: list[str], problems: int) -> dict:
    cfg = load_config(config, overrides)
    vc, ws = cfg.verifier, cfg.warmstart
    sides = load_split(cfg.data, cfg.run.seed)
    train, test = sides["prover"], sides["test"]
    vtok = train_tokenizer(corpus_texts(train + sides["verifier"] + test), vc.tiny.numbers)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="pvg-judge-") as tmp:
        warm_verifier(cfg, vtok, train, test, Path(tmp), lambda description, total: (lambda n=1, **fields: None))
        model = load_verifier(Path(tmp) / "verifier_base", vtok.pad_token_id, seed=0)
    seconds = time.time() - t0
    held = [p for p in test[:problems] if p.compact_reference]
    refs = score_texts(model, vtok, [verifier_text(p.question, p.compact_reference) for p in held], vc.max_length)
    flaws = [(p, f) for p in held for f in p.flawed]
    flawed = score_texts(model, vtok, [verifier_text(p.question, f.compact) for p, f in flaws], vc.max_length)
    ref_of = {p.id: r for p, r in zip(held, refs)}
    caught: dict[str, list[bool]] = defaultdict(list)
    for (p, f), s in zip(flaws, flawed):
        caught[f.flaw.kind].append(ref_of[p.id] > s)
    every = [c for cs in caught.values() for c in cs]
    return {
        "config": config, "overrides": overrides, "seed": cfg.run.seed, "problems": len(held),
        "judging_steps": ws.verifier_pretrain_steps, "judging_batch": ws.verifier_pretrain_batch_size or ws.batch_size,
        "lr": vc.lr, "seconds": round(seconds), "all": sum(every) / len(every),
        **{kind: sum(cs) / len(cs) for kind, cs in sorted(caught.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--seeds", type=int, nargs="+", help="run.seed values, one judge each (default: the config's)")
    ap.add_argument("--set", action="append", default=[], help="config override, as for pvg")
    ap.add_argument("--problems", type=int, default=1000, help="held-out test problems to score (default 1000)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "judge_by_flaw.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the side-by-side warm start trains it on CPU
    quiet_libraries()
    for seed in args.seeds or [None]:
        result = judge_by_flaw(args.config, args.set + ([] if seed is None else [f"run.seed={seed}"]), args.problems)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
