"""One self-contained HTML page per run: the config, the per-round dashboard, the plots, and solutions.

Numbers say *whether* the verifier got harder to fool; only reading solutions says *how* the
sneaky prover tries (the paper's main qualitative result). So each round shows a few problems from
that round's pool with a helpful and a sneaky solution side by side, the sneaky ones that the
verifier scored highest first, and the line where a wrong solution goes wrong marked when we can
know it. The page has no network dependency (inline CSS, the figure as a base64 PNG, no script or
font from elsewhere): it can be mailed, attached to a PR, or opened on an air-gapped cluster.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from dataclasses import dataclass

import pyarrow.parquet as pq

from pvg.data.problems import Problem
from pvg.run.view import COLUMNS, NO_EXPLOIT, RunView, cell, header_text
from pvg.data.solution_check import first_departure, wrong_calculations

DEPARTS = "first departure from the reference solution"
WRONG_CALC = "wrong arithmetic"


@dataclass
class Example:
    problem_id: str
    question: str
    helpful: dict  # a pool row (pvg.game.pool.SCHEMA)
    sneaky: dict


def pick_examples(rows: list[dict], n: int) -> list[Example]:
    """The `n` problems whose sneaky solution is most convincing, each beside its best helpful one.

    Per problem, the sneaky solution shown is an incorrect one if there is any (that is the role's
    job), the highest-scored of those; the helpful one is a correct one if any, highest-scored.
    Problems are ranked by their sneaky solution: incorrect first, then by verifier score, so the
    page opens on the solutions that fooled the verifier most. Problem id breaks ties (determinism).
    """
    by_problem: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], {}).setdefault(r["role"], []).append(r)

    def score(r):
        s = r.get("verifier_score")
        return float("-inf") if s is None or s != s else s

    picked = []
    for pid, roles in by_problem.items():
        if roles.get("helpful") and roles.get("sneaky"):
            h = max(roles["helpful"], key=lambda r: (bool(r["correct"]), score(r), -r["sample"]))
            s = max(roles["sneaky"], key=lambda r: (not r["correct"], score(r), -r["sample"]))
            picked.append(Example(pid, s["question"], h, s))
    picked.sort(key=lambda e: (bool(e.sneaky["correct"]), -score(e.sneaky), e.problem_id))
    return picked[:n]


def line_marks(text: str, correct: bool, problem: Problem | None) -> tuple[list[str], dict[int, list[str]], bool]:
    """A solution's lines, what is marked on each, and whether it stops short of the reference.

    Marks need the problem's known reference (synthetic data): pool rows carry no flaw annotation,
    and a sampled solution is not one of the planted flaws, so where it goes wrong is read off by
    comparing lines. For an incorrect solution the first line that departs from the reference is
    marked; any line whose own `a op b = c` is false is marked in every solution (a correct final
    answer can sit on a wrong calculation). With no known problem (hub data) nothing is marked; with
    no line-by-line reference (GSM8K JSONL) only the arithmetic is.
    """
    lines = text.strip().splitlines()
    marks: dict[int, list[str]] = {}
    short = False
    if problem is None:
        return lines, marks, short
    body = "\n".join(lines)
    for i in wrong_calculations(body):
        marks.setdefault(i, []).append(WRONG_CALC)
    if not correct and problem.compact_reference:
        d = first_departure(body, problem.compact_reference)
        if d is not None and d < len(lines):
            marks.setdefault(d, []).insert(0, DEPARTS)
        elif d is not None:
            short = True
    return lines, marks, short


def problem_index(view: RunView) -> tuple[dict[str, Problem], str]:
    """The run's problems by id, regenerated from its config; ({}, why not) when they cannot be had.

    Synthetic problems are a pure function of (data config, seed), so they come back exactly; a JSONL
    file is read if it is still where the config says. Hub data is not fetched: a report must not
    need the network.
    """
    from pvg.config import load_config
    from pvg.data.dataset import load_problems
    from pvg.errors import PvgError

    source = view.cfg("data.source", "synthetic")
    if source == "hub":
        return {}, "the problems come from a hub data set, which the report does not download"
    try:
        cfg = load_config(view.path / "config.yaml")
        problems = load_problems(cfg.data, cfg.run.seed)
    except (PvgError, OSError, ValueError) as e:
        return {}, f"the run's problems could not be loaded ({e})"
    return {p.id: p for p in problems}, ""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _metrics_table(view: RunView) -> str:
    head = "".join(f"<th>{_e(header_text(h))}</th>" for _, h, _ in COLUMNS)
    body = "".join(
        f'<tr id="metrics-round-{r["round"]}">' + "".join(f"<td>{_e(cell(r, k))}</td>" for k, _, _ in COLUMNS) + "</tr>"
        for r in view.rounds
    )
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fooled(role: str) -> str:
    # Fooling is the sneaky role's aim (the fool rate counts it); a helpful wrong one is a soundness error.
    return " (fools the verifier)" if role == "sneaky" else " though incorrect"


def _solution(row: dict, problem: Problem | None, threshold) -> str:
    role, correct, score = row["role"], bool(row["correct"]), row.get("verifier_score")
    lines, marks, short = line_marks(row["text"], correct, problem)
    badges = [f'<span class="badge {"ok" if correct else "bad"}">{"correct" if correct else "incorrect"}</span>']
    if score is not None and score == score:
        badges.append(f'<span class="badge">score {score:.3f}</span>')
        if isinstance(threshold, (int, float)) and threshold == threshold:
            accepted = score >= threshold
            fools = accepted and not correct
            badges.append(f'<span class="badge {"warn" if fools else ""}">'
                          f'{"accepted" if accepted else "rejected"}{_fooled(role) if fools else ""}</span>')
    if row.get("answer") is not None:
        badges.append(f'<span class="badge">answer {_e(row["answer"])}</span>')
    out = []
    for i, line in enumerate(lines):
        why = marks.get(i, [])
        cls = " ".join(["line"] + (["departs"] if DEPARTS in why else []) + (["wrongcalc"] if WRONG_CALC in why else []))
        note = f'<span class="why">{_e("; ".join(why))}</span>' if why else ""
        out.append(f'<div class="{cls}"><code>{_e(line) or "&nbsp;"}</code>{note}</div>')
    if short:
        out.append(f'<div class="line departs"><span class="why">{_e("stops here; the reference solution goes on")}'
                   "</span></div>")
    return (f'<div class="solution {_e(role)} {"correct" if correct else "incorrect"}">'
            f'<div class="head"><span class="role">{_e(role)}</span> {" ".join(badges)}</div>'
            f'<div class="lines">{"".join(out)}</div></div>')


def _round_examples(view: RunView, row: dict, n: int, problems: dict[str, Problem]) -> str:
    k = row["round"]
    pool = view.path / "pool" / f"round-{k}.parquet"
    title = f'<h3 id="round-{k}">Round {k}</h3>'
    if not pool.is_file():
        return title + f'<p class="note">no pool file for this round ({_e(pool.name)} is missing)</p>'
    try:
        rows = pq.read_table(pool).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged file
        return title + f'<p class="note">{_e(pool.name)} could not be read: {_e(e)}</p>'
    threshold = row.get("verifier_threshold")
    shown = pick_examples(rows, n)
    parts = [title, f'<p class="note">{len(rows)} solutions in {_e(pool.name)}; acceptance threshold '
                    f'{_e(f"{threshold:.3f}" if isinstance(threshold, float) else "n/a")} (the round\'s verifier, '
                    f'{_e(view.cfg("verifier.threshold", "helpful_median"))}). Showing {len(shown)} problem'
                    f'{"s" * (len(shown) != 1)}.</p>']
    for ex in shown:
        p = problems.get(ex.problem_id)
        ref = ""
        if p is not None and (p.compact_reference or p.reference):
            ref = (f"<details><summary>reference solution (answer {_e(p.answer)})</summary>"
                   f"<pre>{_e(p.compact_reference or p.reference)}</pre></details>")
        parts.append(f'<div class="problem" id="round-{k}-{_e(ex.problem_id)}">'
                     f'<p class="question"><span class="pid">{_e(ex.problem_id)}</span> {_e(ex.question)}</p>{ref}'
                     f'<div class="pair">{_solution(ex.helpful, p, threshold)}{_solution(ex.sneaky, p, threshold)}'
                     "</div></div>")
    return f'<section class="round">{"".join(parts)}</section>'


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:16px 24px;color:#1d1d1f;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-bottom:.3em}
.status{font-size:1.1em;font-weight:600}.note{color:#555;font-size:.92em}
table.metrics{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9em}
table.metrics th,table.metrics td{border:1px solid #ddd;padding:4px 8px;text-align:right}
table.metrics th{background:#f3f3f5;vertical-align:bottom}
img.plots{max-width:100%;height:auto;border:1px solid #eee}
details{margin:.4em 0}summary{cursor:pointer;color:#333}
pre{background:#f6f6f8;padding:8px;overflow-x:auto;font-size:.85em}
.problem{border:1px solid #ddd;border-radius:6px;padding:10px 12px;margin:12px 0}
.question{margin:.2em 0 .4em}.pid{color:#888;font-size:.8em;font-family:ui-monospace,monospace}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.solution{border-left:4px solid #999;padding:6px 10px;background:#fafafa}
.solution.helpful{border-color:#2e7d32}.solution.sneaky{border-color:#8e24aa}
.head{margin-bottom:4px}.role{font-weight:700;text-transform:uppercase;font-size:.8em;letter-spacing:.05em}
.badge{display:inline-block;font-size:.78em;padding:1px 6px;border-radius:9px;background:#e8e8ec;margin-left:2px}
.badge.ok{background:#d7f0d9}.badge.bad{background:#f8d7da}.badge.warn{background:#ffe08a}
.line{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em;white-space:pre-wrap;padding:1px 4px}
.line code{font:inherit}
.line.departs{background:#fff3b0;outline:1px solid #e0b800}
.line.wrongcalc code{text-decoration:underline wavy #d32f2f}
.why{display:block;font-family:system-ui,sans-serif;font-size:.8em;color:#8a6d00}
.evalfig{max-width:600px;width:100%;display:block}
@media (max-width:800px){.pair{grid-template-columns:1fr}}
"""


EVAL_TITLES = {
    "best_of_n": ("Balanced best-of-n", "how often each round's verifier picks a correct solution out of n/2 correct "
                  "and n/2 incorrect helpful ones (chance 50%)"),
    "separability": ("Separability", "ROC AUC of a small discriminator telling helpful from sneaky solutions; near "
                     "50% means the sneaky role looks helpful"),
    "departures": ("Where sneaky solutions go wrong", "sneaky pool solutions by the first line that differs from the "
                   "reference, and the wrong ones' mean score less the helpful correct mean (at or above 0 they fool "
                   "the verifier)"),
    "judges": ("Weak judges", "checkers trained apart from the game (whole solutions; first half only), their accuracy "
               "on each round's solutions and CAPA κp to the verifier"),
    "prover_similarity": ("Prover similarity", "CAPA κ between the rounds' provers' answers"),
    "matrix": ("Verifier × prover", "the share of each round's sneaky incorrect solutions that each round's verifier "
                                    "accepts (rows: verifiers, columns: provers); falling down a column means later "
                                    "verifiers are fooled less by the same sneaky prover"),
    "reliability": ("Reliability by difficulty", "correct, avoidant and incorrect answers by number of steps"),
    "human": ("Human study", "raters' accuracy and time on the blind, timed form"),
    "w2s": ("Weak-to-strong", "a larger student trained on each round verifier's judgments vs. on ground truth (PGR)"),
    **{f"attack_{r}": (f"Sneaky-only attack ({r})", "PPO steps a fresh attacker needs to exploit each round's frozen "
                       "verifier; rising over rounds means the verifiers got more robust") for r in ("src", "src_ordered", "cgc", "goodhart")},
}


def _evals_section(view: RunView) -> str:
    """Every `pvg eval` result stored in the run folder: its figure, its options, its numbers."""
    import json

    from pvg.eval.store import EVAL_DIR, load_all

    results = load_all(view.path)
    if not results:
        return ""
    parts = ['<section id="evals"><h2>Evaluations</h2><p class="note">Results of <code>pvg eval ...</code> stored in '
             f"{_e(EVAL_DIR)}/ (each computed on the run as it was then; rerun the command after more rounds).</p>"]
    for name, res in results.items():
        title, what = EVAL_TITLES.get(name, (name, ""))
        body = {k: v for k, v in res.items() if k not in ("eval", "params", "fingerprint", "figure")}
        img = ""
        fig = view.path / EVAL_DIR / str(res.get("figure", ""))
        if res.get("figure") and fig.is_file():
            img = f'<img class="evalfig" alt="{_e(title)}" src="data:image/png;base64,{base64.b64encode(fig.read_bytes()).decode()}">'
        parts.append(f'<div class="eval" id="eval-{_e(name)}"><h3>{_e(title)}</h3><p class="note">{_e(what)} · '
                     f"options {_e(json.dumps(res.get('params', {})))}</p>{img}<details><summary>numbers</summary>"
                     f"<pre>{_e(json.dumps(body, indent=1))}</pre></details></div>")
    parts.append("</section>")
    return "".join(parts)


def build_report(view: RunView, examples: int = 3, dpi: int = 100) -> str:
    """The whole page as a string; `view` must have at least one finished round."""
    from pvg.inspect.plots import png_bytes

    view.require_rounds("a report")
    png = base64.b64encode(png_bytes([view], dpi=dpi)).decode()
    problems, why_not = problem_index(view) if examples > 0 else ({}, "")
    ws = view.warmstart or {}
    ws_line = ""
    if isinstance(ws.get("helpful_pass_rate"), (int, float)) and isinstance(ws.get("sneaky_incorrect_rate"), (int, float)):
        ws_line = (f'<p class="note">warm-started prover (before round 0): helpful pass rate '
                   f'{ws["helpful_pass_rate"]:.0%}, sneaky incorrect rate {ws["sneaky_incorrect_rate"]:.0%}</p>')
    marks = (f'<p class="note">Marks: <span class="line departs">{_e(DEPARTS)}</span> (incorrect solutions) and '
             f'<span class="line wrongcalc"><code>{_e(WRONG_CALC)}</code></span> (any solution), against the '
             "problem's reference solution, regenerated from the run's config.</p>")
    if why_not:
        marks = f'<p class="note">No line marks: {_e(why_not)}.</p>'
    rounds_html = "".join(_round_examples(view, r, examples, problems) for r in view.rounds) if examples > 0 else ""
    examples_html = (
        '<section id="examples"><h2>Solutions, round by round</h2>'
        f'<p class="note">Each round: the {examples} problem{"s" * (examples != 1)} of the round\'s pool whose sneaky '
        "solution the round's verifier scored highest (incorrect ones first), beside a helpful solution to the same "
        "problem (a correct one where there is one). The pool is sampled after the round's PPO, on the verifier's "
        f"half of the problems, and scored by that round's verifier.</p>{marks}{rounds_html}</section>"
        if examples > 0 else "")
    evals_html = _evals_section(view)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>pvg report: {_e(view.name)}</title><style>{CSS}</style></head>
<body>
<header><h1>pvg report: {_e(view.name)}</h1>
<p class="status">{_e(view.status.text)}</p>
<p class="note">{_e(view.location if "://" in view.location else view.path.resolve())} · generated {_e(generated)}</p></header>
<section id="config"><h2>Config</h2>
<details><summary>resolved config.yaml ({len(view.config_text.splitlines())} lines)</summary>
<pre>{_e(view.config_text)}</pre></details></section>
<section id="rounds"><h2>Rounds</h2>{_metrics_table(view)}
<p class="note">{_e(NO_EXPLOIT)} in "steps to exploit": the sneaky role did not exploit the verifier within the
prover phase's {_e(view.cfg("ppo.max_steps", "?"))} PPO steps. Rates and AUROC are measured on fresh solutions
to held-out test problems; times are wall-clock seconds per phase.</p>{ws_line}</section>
<section id="plots"><h2>Plots</h2>
<img class="plots" alt="legibility metrics over rounds" src="data:image/png;base64,{png}"></section>
{evals_html}
{examples_html}
</body></html>
"""
