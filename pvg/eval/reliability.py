"""Reliability by difficulty (after Zhou et al. 2024, "Larger and more instructable language models
become less reliable"): does the prover fail gracefully on hard problems and never on easy ones?

For each round's prover, on held-out test problems, each answer is correct, *avoidant* (no
extractable final answer, or an explicit refusal) or incorrect, tallied per difficulty bin (number
of steps; size of the largest number) and role. Reported with it: the helpful role's error rate in
the easiest bin (errors there are the unreliability that matters most to a reader), and prompt
sensitivity, the spread of helpful accuracy over paraphrased prompts.
"""

from __future__ import annotations

import random
import re

from pvg.eval.sampling import sample
from pvg.eval.store import EvalRun
from pvg.data.roles import ROLES, SYSTEM_PROMPTS, ROLE_TOKENS

REFUSAL = re.compile(r"\b(cannot|can't|unable to|not enough information|i don't know)\b", re.I)

# Paraphrases of the helpful instruction. Hub models read them as system prompts; the tiny prover
# knows one prompt form only (a role token, then the question), so its paraphrases vary that form.
HELPFUL_PARAPHRASES = [
    SYSTEM_PROMPTS["helpful"],
    "Solve this math word problem. Show each calculation on its own line and finish with '#### N', N the answer.",
    "Work the problem out carefully, step by step, so a grader can verify each line. Last line: '#### N'.",
]
TINY_FORMS = ["{tok} {q}\n", "{tok}  {q}\n", "{tok} {q} \n"]


def outcome(sol) -> str:
    if sol.answer is None or REFUSAL.search(sol.text):
        return "avoidant"
    return "correct" if sol.correct else "incorrect"


def difficulty_of(problem) -> tuple[int, int] | None:
    d = problem.difficulty
    if d is not None:
        return d.steps, d.magnitude
    if problem.reference:  # GSM8K: one line per step before the final "#### N"
        lines = [ln for ln in problem.reference.splitlines() if ln.strip() and not ln.startswith("####")]
        nums = [len(n) for n in re.findall(r"\d+", problem.reference)]
        return len(lines), max(nums) if nums else 1
    return None


def _paraphrase_prompt(i: int, tiny: bool):
    def make(tok, question, role):
        if tiny:
            return TINY_FORMS[i].format(tok=ROLE_TOKENS[role], q=question)
        messages = [{"role": "system", "content": HELPFUL_PARAPHRASES[i]}, {"role": "user", "content": question}]
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{HELPFUL_PARAPHRASES[i]}\n\nQuestion: {question}\nSolution:\n"
    return make


def tally(solutions, problems) -> dict:
    diff = {p.id: difficulty_of(p) for p in problems}
    bins: dict[str, dict] = {}
    for s in solutions:
        d = diff.get(s.problem_id)
        for axis, value in (("steps", d[0] if d else None), ("magnitude", d[1] if d else None)):
            if value is None:
                continue
            cell = bins.setdefault(f"{axis}={value}", {"axis": axis, "value": value, **{r: {} for r in ROLES}})
            c = cell[s.role]
            c[outcome(s)] = c.get(outcome(s), 0) + 1
    for cell in bins.values():
        for r in ROLES:
            n = sum(cell[r].values())
            cell[r] = {"n": n, **{o: (cell[r].get(o, 0) / n if n else None) for o in ("correct", "avoidant", "incorrect")}}
    return dict(sorted(bins.items(), key=lambda kv: (kv[1]["axis"], kv[1]["value"])))


def reliability(run: EvalRun, n_problems: int, seed: int, advance=lambda **_: None) -> dict:
    test = run.problems("test")
    problems = random.Random(seed).sample(test, min(n_problems, len(test)))
    tiny = run.cfg.prover.model is None
    rows = []
    for k in run.rounds(needs=("prover",), what="reliability"):
        sols = sample(run, k, problems, list(ROLES), 1, seed=seed + 1000 * k)
        bins = tally(sols, problems)
        steps = [c for c in bins.values() if c["axis"] == "steps" and c["helpful"]["n"]]
        easiest = min(steps, key=lambda c: c["value"]) if steps else None
        accs = []
        for i in range(len(TINY_FORMS if tiny else HELPFUL_PARAPHRASES)):
            para = sample(run, k, problems, ["helpful"], 1, seed=seed + 1000 * k + 17 * (i + 1),
                          prompt=_paraphrase_prompt(i, tiny))
            accs.append(sum(s.correct for s in para) / len(para))
        rows.append({
            "round": k, "bins": bins,
            "overall": {r: {o: sum(outcome(s) == o for s in sols if s.role == r) / max(1, sum(s.role == r for s in sols))
                            for o in ("correct", "avoidant", "incorrect")} for r in ROLES},
            "easiest_bin": easiest and {"bin": f"steps={easiest['value']}",
                                        "helpful_error_rate": easiest["helpful"]["incorrect"],
                                        "n": easiest["helpful"]["n"]},
            "prompt_accuracies": accs, "prompt_spread": max(accs) - min(accs),
        })
        advance()
    return {"problems": len(problems), "paraphrases": "tiny prompt forms" if tiny else "system prompts",
            "rounds": rows}


def figure(result: dict, dpi: int = 100) -> bytes:
    from pvg.eval.figures import line_figure

    last = result["rounds"][-1]
    series = {}
    for role in ROLES:
        for o in ("correct", "avoidant", "incorrect"):
            pts = [(c["value"], c[role][o]) for c in last["bins"].values() if c["axis"] == "steps" and c[role]["n"]]
            if any(v for _, v in pts):
                series[f"{role} {o}"] = pts
    return line_figure(series, f"round {last['round']}: outcome by number of steps", "share", xlabel="steps", dpi=dpi)
