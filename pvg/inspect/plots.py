"""The legibility dashboard as one figure: a panel per family of metrics, rounds on the x axis.

Panels follow the questions a reader asks of a prover-verifier game (docs/design.md, "Metrics"):
(a) can the sneaky prover still fool the verifier, and how fast does it find an exploit;
(b) is the verifier getting better at telling correct from incorrect;
(c) does each role do its job (helpful correct, sneaky incorrect);
(d) how far did PPO move the prover, and did its solutions change length.
Colour is the run and line style the metric, so several runs (e.g. SRC against CGC) overlay on one
figure. matplotlib runs headless (Agg) and is imported only when a plot is made, so `pvg --help`
and `pvg metrics` stay fast.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Sequence

from pvg.run.view import RunView

FIGSIZE = (12, 8)  # inches; at the default 100 dpi a 1200x800 PNG, readable on a laptop and in a README
FORMATS = (".png", ".pdf", ".svg")


def run_labels(views: Sequence[RunView]) -> list[str]:
    """Legend labels: the folder name, or parent/name where two runs share a name (runs-a/tiny, runs-b/tiny)."""
    names = [v.path.name for v in views]
    # the parent as named (a URI's, not its local mirror's)
    labels = [n if names.count(n) == 1 else f"{PurePosixPath(v.location.rstrip('/')).parent.name}/{n}"
              for n, v in zip(names, views)]
    return [lab if labels.count(lab) == 1 else v.location for lab, v in zip(labels, views)]


def _series(view: RunView, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in view.rounds:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
            xs.append(r["round"])
            ys.append(float(v))
    return xs, ys


def make_figure(views: Sequence[RunView], title: str | None = None):
    """The 2x2 figure for one or more runs (each must have at least one finished round)."""
    import matplotlib

    matplotlib.use("Agg")  # never a display: this runs on servers, in CI and in tests
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, 2, figsize=FIGSIZE, layout="constrained")
    (fool, verif), (roles, kl) = axes
    twin_steps, twin_tokens = fool.twinx(), kl.twinx()
    labels = run_labels(views)
    max_steps = 0

    def line(ax, view, key, colour, style, marker="o"):
        xs, ys = _series(view, key)
        ax.plot(xs, ys, color=colour, linestyle=style, marker=marker, markersize=5, linewidth=1.8)

    for i, view in enumerate(views):
        c = colours[i % len(colours)]
        line(fool, view, "sneaky_fool_rate", c, "-")
        # steps-to-exploit: a filled square where the sneaky role exploited the verifier; an open
        # triangle at the step limit where it never did (the verifier held for the whole phase).
        hit = [(r["round"], r["steps_to_exploit"]) for r in view.rounds
               if r.get("exploited") and r.get("steps_to_exploit") is not None]
        held = [(r["round"], r.get("ppo_steps") or view.cfg("ppo.max_steps") or 0) for r in view.rounds
                if not r.get("exploited")]
        for pts, marker, face in ((hit, "s", c), (held, "^", "none")):
            if pts:
                twin_steps.scatter(*zip(*pts), marker=marker, s=60, facecolors=face, edgecolors=c, linewidths=1.5,
                                   zorder=3)
                max_steps = max(max_steps, *(s for _, s in pts))
        line(verif, view, "verifier_auroc", c, "-")
        line(verif, view, "verifier_soundness", c, "--", "v")
        line(verif, view, "verifier_completeness", c, ":", "^")
        line(roles, view, "helpful_pass_rate", c, "-")
        line(roles, view, "sneaky_incorrect_rate", c, "--", "v")
        line(kl, view, "kl_to_init", c, "-")
        line(twin_tokens, view, "helpful_mean_tokens", c, "--", "v")
        line(twin_tokens, view, "sneaky_mean_tokens", c, ":", "^")

    verif.axhline(0.5, color="0.6", linewidth=0.8, linestyle="-.")  # AUROC of a coin flip
    for ax in (fool, verif, roles):
        ax.set_ylim(-0.03, 1.03)
    twin_steps.set_ylim(0, max(1, max_steps) * 1.15)
    twin_steps.yaxis.set_major_locator(MaxNLocator(integer=True))
    tokens = [y for v in views for key in ("helpful_mean_tokens", "sneaky_mean_tokens") for y in _series(v, key)[1]]
    twin_tokens.set_ylim(0, max(tokens + [1]) * 1.15)  # from zero: a 1-token wobble of 40 tokens is no trend
    kl.set_ylim(bottom=min(0, kl.get_ylim()[0]))
    fool.set_title("(a) can the sneaky prover fool the verifier?")
    fool.set_ylabel("sneaky fool rate")
    twin_steps.set_ylabel("PPO steps to exploit")
    verif.set_title("(b) verifier on fresh held-out solutions")
    verif.set_ylabel("AUROC / rate")
    roles.set_title("(c) does each role do its job?")
    roles.set_ylabel("rate")
    kl.set_title("(d) how far PPO moved the prover")
    kl.set_ylabel("KL to initial prover")
    twin_tokens.set_ylabel("mean solution tokens")
    for ax in (fool, verif, roles, kl):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)

    def key(ax, entries):
        # Line styles name the metric, colours (the runs) get the figure legend. The key sits under
        # the panel so it never hides a point; on a twin axis it goes on the twin, drawn last.
        handles = [Line2D([], [], color="0.25", linestyle=ls, marker=m, markersize=6, linewidth=1.5 if ls else 0,
                          markerfacecolor=face) for _, ls, m, face in entries]
        ax.legend(handles, [e[0] for e in entries], loc="upper center", bbox_to_anchor=(0.5, -0.13),
                  ncols=len(entries), fontsize=8, frameon=False)

    key(twin_steps, [("fool rate", "-", "o", "0.25"), ("steps to exploit", "", "s", "0.25"),
               ("no exploit (step limit)", "", "^", "none")])
    key(verif, [("AUROC", "-", "o", "0.25"), ("soundness", "--", "v", "0.25"),
                ("completeness", ":", "^", "0.25"), ("chance", "-.", "", "0.25")])
    key(roles, [("helpful pass rate", "-", "o", "0.25"), ("sneaky incorrect rate", "--", "v", "0.25")])
    key(twin_tokens, [("KL to init", "-", "o", "0.25"), ("helpful tokens", "--", "v", "0.25"),
                      ("sneaky tokens", ":", "^", "0.25")])
    fig.legend([Line2D([], [], color=colours[i % len(colours)], linewidth=3) for i in range(len(views))], labels,
               loc="outside lower center", ncols=min(len(views), 4), fontsize=10, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(views: Sequence[RunView], output: Path, dpi: int = 100, title: str | None = None) -> None:
    """Write the figure; the format follows the suffix (see FORMATS). Closed after, so loops don't leak."""
    import matplotlib.pyplot as plt

    fig = make_figure(views, title)
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp{output.suffix}")  # the format follows the suffix: keep it
    try:
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(output)  # whole or not at all: a full disk leaves neither a partial image nor tmp
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def png_bytes(views: Sequence[RunView], dpi: int = 100, title: str | None = None) -> bytes:
    """The figure as PNG bytes, for embedding (the HTML report inlines it as base64)."""
    import matplotlib.pyplot as plt

    fig = make_figure(views, title)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()
