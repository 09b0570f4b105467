"""Verifier sweep: how well does one verifier recipe judge fresh solutions, and on which errors does it fail?

Trains a verifier exactly as a round's verifier phase does (same pairs from the pool mixture, same
loss and steps), but offline from a finished run folder, so recipes can be compared in a minute
each without replaying the game:

    python bench/verifier_sweep.py runs/tiny --train initial --eval 0
    python bench/verifier_sweep.py runs/tiny --train initial --eval 0 --base-lm correct:600
    python bench/verifier_sweep.py runs/tiny --train initial --eval 0 --tiny 64,4,4,128 --steps 600
    python bench/verifier_sweep.py runs/tiny --train initial,0,1,2 --eval 3 --epochs 4   # round 3's phase, 4 passes
    python bench/verifier_sweep.py runs/tiny --train initial,0,1,2,3 --eval 4 --numbers whole \
        --base-lm all:1000 --dense 5000 --seed 2      # a whole warm start of the verifier, then a round

`--eval K` scores pool round K's solutions on problems the training pairs never saw. AUROC is
reported overall and split by how the incorrect solutions are wrong (`pvg.data.solution_check`): an
`arithmetic` error needs the verifier to redo a calculation, a `structural` one (misread number,
wrong operation, dropped or stale step) needs it to read the question. Each result is appended
to `bench/results/verifier_sweep.jsonl` with its recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.config import load_config  # noqa: E402
from pvg.data.dataset import load_split  # noqa: E402
from pvg.game.metrics import auroc  # noqa: E402
from pvg.game.models import build_tiny_causal_lm, load_verifier, num_params, quiet_libraries  # noqa: E402
from pvg.game.pool import INITIAL, mixture_pairs, read_rounds  # noqa: E402
from pvg.data.roles import verifier_text  # noqa: E402
from pvg.game.sft import Example, encode, train_lm  # noqa: E402
from pvg.data.solution_check import error_kind  # noqa: E402
from pvg.data.tokenizer import load_tokenizer, train_tokenizer  # noqa: E402
from pvg.game.verifier_train import Pair, phase_steps, score_texts, train_verifier, train_verifier_tokens  # noqa: E402
from pvg.game.warmstart import corpus_texts, flaw_token_labels, run_warmstart  # noqa: E402


def round_id(s: str) -> int:
    return INITIAL if s == "initial" else int(s)


def build_base(cfg, tok, kind: str, steps: int, tiny, work: Path, seed: int) -> Path:
    """A verifier base LM trained on the synthetic corpus: `correct` (reference solutions only) or
    `all` (references and flawed ones, as the warm start does)."""
    path = work / f"base-{kind}-{steps}-{tiny.hidden_size}x{tiny.num_layers}-{tiny.numbers}-{seed}"
    if (path / "config.json").is_file():
        return path
    train = load_split(cfg.data, cfg.run.seed)["prover"]
    texts = []
    for p in train:
        texts.append(verifier_text(p.question, p.compact_reference))
        if kind == "all":
            texts.extend(verifier_text(p.question, f.compact) for f in p.flawed)
    base = build_tiny_causal_lm(tok, tiny, seed)
    encoded = encode(tok, [Example("", t) for t in texts], cfg.verifier.max_length)
    t0 = time.time()
    losses = train_lm(base, encoded, steps=steps, batch_size=cfg.warmstart.batch_size, lr=cfg.warmstart.lr,
                      warmup=cfg.warmstart.verifier_warmup_steps, pad_id=tok.pad_token_id, seed=seed, mask_prompt=False)
    print(f"base LM ({kind}, {steps} steps, {num_params(base)/1e6:.2f}M params): loss {sum(losses[-20:])/20:.3f}, "
          f"{time.time()-t0:.0f}s", flush=True)
    base.save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--train", default="initial", help="pool rounds to train on, comma-separated (initial,0,1)")
    ap.add_argument("--eval", default="0", help="pool round to evaluate on (fresh problems only)")
    ap.add_argument("--steps", type=int, help="verifier train steps (default: the run's verifier.train_steps)")
    ap.add_argument("--epochs", type=float,
                    help="at least this many passes over the pairs, as verifier.train_epochs (default: the run's)")
    ap.add_argument("--batch-pairs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--per-problem", type=int, help="solutions per problem (default: the run's)")
    ap.add_argument("--base-lm", help="KIND:STEPS, train a new base LM (KIND correct|all) instead of the warm start's")
    ap.add_argument("--base", help="a causal LM folder to start from (e.g. the warm-started prover: an upper bound)")
    ap.add_argument("--tiny", help="HIDDEN,LAYERS,HEADS,INTERMEDIATE for --base-lm (default: the run's verifier.tiny)")
    ap.add_argument("--pretrain", type=int, default=0,
                    help="first train the verifier this many steps on generator pairs (reference vs planted flaw, "
                         "prover-half problems) before the pool pairs")
    ap.add_argument("--dense", type=int, default=0,
                    help="first train this many steps with a per-token label on generator solutions "
                         "(1 until the first token that departs from the reference, 0 from there on)")
    ap.add_argument("--dense-batch", type=int, default=64, help="solutions per step of --dense")
    ap.add_argument("--numbers", choices=["digits", "whole"],
                    help="with --base-lm: the verifier's tokenizer (default: the run's verifier.tiny.numbers)")
    ap.add_argument("--holdout", type=float, default=0.0,
                    help="hold out this share of the eval round's problems from training (when --train includes it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "verifier_sweep.jsonl")
    args = ap.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    quiet_libraries()
    cfg = load_config(args.run / "config.yaml", [])
    vc = cfg.verifier
    ws = run_warmstart(cfg, progress=False)
    tok = load_tokenizer(ws.verifier_tokenizer)
    base = ws.verifier_base
    tiny = vc.tiny
    if args.tiny:
        h, n, heads, inter = (int(x) for x in args.tiny.split(","))
        tiny = tiny.model_copy(update={"hidden_size": h, "num_layers": n, "num_heads": heads, "intermediate_size": inter})
    if args.base:
        base = args.base
    if args.numbers:
        tiny = tiny.model_copy(update={"numbers": args.numbers})
        if not args.base_lm:
            ap.error("--numbers needs --base-lm: a base trained with the other tokenizer cannot read it")
        sides = load_split(cfg.data, cfg.run.seed)
        tok = train_tokenizer(corpus_texts(sides["prover"] + sides["verifier"] + sides["test"]), args.numbers)
    if args.base_lm:
        kind, steps = args.base_lm.split(":")
        base = build_base(cfg, tok, kind, int(steps), tiny, Path("/tmp/pvg-verifier-bases"), args.seed + 1)

    sources = [round_id(s) for s in args.train.split(",")]
    rows = read_rounds(args.run / "pool", sources)
    eval_rows = read_rounds(args.run / "pool", [round_id(args.eval)])
    held = {r.problem_id for r in eval_rows if args.holdout and random.Random(r.problem_id).random() < args.holdout}
    rows = [r for r in rows if r.problem_id not in held]
    pairs = mixture_pairs(rows, sources, args.per_problem or vc.solutions_per_problem, vc.mixture, args.seed)
    seen = {r.problem_id for r in rows}
    fresh = [r for r in eval_rows if r.problem_id not in seen]

    model = load_verifier(base, tok.pad_token_id, seed=args.seed)
    t0 = time.time()
    if args.dense:
        labelled = flaw_token_labels(tok, load_split(cfg.data, cfg.run.seed)["prover"], vc.max_length)
        pre = train_verifier_tokens(model, labelled, pad_id=tok.pad_token_id, steps=args.dense, batch_size=args.dense_batch,
                                    lr=vc.lr, seed=args.seed + 11)
        print(f"token-label pretraining on {len(labelled)} generator solutions: final-token acc "
              f"{pre['verifier_final_acc']:.2f}", flush=True)
    if args.pretrain:
        synthetic = [Pair(verifier_text(p.question, p.compact_reference), verifier_text(p.question, f.compact))
                     for p in load_split(cfg.data, cfg.run.seed)["prover"] for f in p.flawed]
        pre = train_verifier(model, tok, synthetic, steps=args.pretrain, batch_pairs=vc.batch_pairs, lr=vc.lr,
                             center_coef=vc.center_coef, max_length=vc.max_length, seed=args.seed + 7)
        print(f"pretrained on {len(synthetic)} generator pairs: pair acc {pre['verifier_pair_acc']:.2f}", flush=True)
    batch_pairs = args.batch_pairs or vc.batch_pairs
    steps = phase_steps(len(pairs), args.steps or vc.train_steps, vc.train_epochs if args.epochs is None else args.epochs,
                        batch_pairs)
    stats = train_verifier(model, tok, pairs, steps=steps, batch_pairs=batch_pairs,
                           lr=args.lr or vc.lr, center_coef=vc.center_coef, max_length=vc.max_length, seed=args.seed)
    train_s = time.time() - t0
    scores = score_texts(model, tok, [verifier_text(r.question, r.text) for r in fresh], vc.max_length)
    kinds = [error_kind(r.text, r.correct) for r in fresh]

    def auc_vs(kind: str | None, role: str | None = None) -> float:
        keep = [i for i, k in enumerate(kinds) if (k == "correct" or kind is None or k == kind)
                and (role is None or fresh[i].role == role)]
        return auroc([scores[i] for i in keep], [fresh[i].correct for i in keep])

    result = {
        "run": str(args.run), "train": args.train, "eval": args.eval, "label": args.label,
        "base": str(base), "tiny": tiny.model_dump(), "params": num_params(model),
        "steps": steps, "batch_pairs": batch_pairs, "lr": args.lr or vc.lr,
        "seed": args.seed, "pretrain": args.pretrain, "dense": args.dense, "dense_batch": args.dense_batch, "pairs": len(pairs), "train_pair_acc": stats["verifier_pair_acc"], "train_s": round(train_s, 1),
        "eval_solutions": len(fresh), "auroc": auc_vs(None),
        "auroc_arithmetic": auc_vs("arithmetic"), "auroc_structural": auc_vs("structural"),
        "auroc_helpful": auc_vs(None, "helpful"), "auroc_sneaky": auc_vs(None, "sneaky"),
        "incorrect_arithmetic_share": kinds.count("arithmetic") / max(1, kinds.count("arithmetic") + kinds.count("structural")),
    }
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items() if k != "tiny"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
