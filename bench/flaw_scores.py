"""How far the verifier's blind spot reaches: each planted-flaw kind scored by a run's round-K verifier
(or by its warm-start judge, before any game), against the reference solutions, on the prover's half.

    python bench/flaw_scores.py RUN_DIR --round 0       # round 0's verifier
    python bench/flaw_scores.py RUN_DIR --judge         # the warm start's judge (checkpoint of the run's cache)
    python bench/flaw_scores.py RUN_DIR --coverage 2 4 8  # problems where each kind can be planted at all

An exploit by the paper's rule needs the sneaky role's wrong solutions to average the helpful correct
mean, so a kind can carry an exploit only if it scores near the reference *and* fits nearly every
problem. `--coverage N ...` re-plants the run's data with N flaws a problem and counts, per kind, the
problems that get one (planting is by rejection: a kind that does not fit a problem's steps is skipped).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pvg.data.roles import verifier_text  # noqa: E402
from pvg.eval.store import EvalRun  # noqa: E402


def scores_by_kind(run: EvalRun, model, tok, n: int) -> None:
    from pvg.game.verifier_train import score_texts

    problems = [p for p in run.problems("prover") if p.compact_reference][:n]
    ref = score_texts(model, tok, [verifier_text(p.question, p.compact_reference) for p in problems],
                      run.cfg.verifier.max_length)
    mean = statistics.fmean(ref)
    print(f"reference: {len(ref)} solutions, mean {mean:.2f}")
    by_kind = collections.defaultdict(list)
    for p in problems:
        for f in p.flawed:
            by_kind[f.flaw.kind].append(verifier_text(p.question, f.compact))
    for kind, texts in sorted(by_kind.items()):
        s = score_texts(model, tok, texts, run.cfg.verifier.max_length)
        print(f"{kind:18} {len(s):5} planted, mean {statistics.fmean(s):6.2f}, "
              f"{sum(x >= mean for x in s) / len(s):4.0%} at or above the reference mean")


def coverage(run: EvalRun, counts: list[int]) -> None:
    from pvg.data.dataset import load_split

    for n in counts:
        data = run.cfg.data.model_copy(update={"flaws_per_problem": n})
        problems = load_split(data, run.cfg.run.seed)["prover"]
        kinds = sorted({f.flaw.kind for p in problems for f in p.flawed})
        share = {k: sum(any(f.flaw.kind == k for f in p.flawed) for p in problems) / len(problems) for k in kinds}
        print(f"{n} flaws a problem: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items())
              + f" of {len(problems)} problems")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--round", type=int, default=0, help="the round whose verifier scores (default 0)")
    ap.add_argument("--judge", action="store_true", help="score with the warm start's judge instead")
    ap.add_argument("--problems", type=int, default=600, help="prover-half problems to score")
    ap.add_argument("--coverage", type=int, nargs="*", help="only count plantable kinds, at these flaws a problem")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    run = EvalRun.open(args.run_dir)
    if args.coverage:
        return coverage(run, args.coverage)
    if args.judge:
        from transformers import AutoModelForSequenceClassification

        from pvg.data.tokenizer import load_tokenizer

        base = run.warmstart("verifier_base", "the judge's scores")
        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1).eval()
        tok_dir = base.parent / "verifier_tokenizer"
        tok = load_tokenizer(str(tok_dir if tok_dir.is_dir() else base.parent / "tokenizer"))
    else:
        model, tok = run.verifier(args.round)
    scores_by_kind(run, model, tok, args.problems)


if __name__ == "__main__":
    main()
