"""One small figure style for every evaluation: a metric over rounds, a line per series."""

from __future__ import annotations

import io


def line_figure(series: dict[str, list[tuple[int, float | None]]], title: str, ylabel: str, xlabel: str = "round",
                chance: float | None = None, ylim=(0.0, 1.02), dpi: int = 100, chance_label: str = "chance") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=dpi)
    rounds = sorted({k for pts in series.values() for k, _ in pts})
    for name, pts in series.items():
        pts = [(k, v) for k, v in pts if v is not None]
        if pts:
            ax.plot([k for k, _ in pts], [v for _, v in pts], marker="o", label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=chance_label)
    ax.set_xticks(rounds)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def heatmap_figure(grid: list[list[float | None]], rows: list[str], cols: list[str], title: str, xlabel: str,
                   ylabel: str, vmin: float, vmax: float, fmt: str = "{:.2f}", cmap: str = "RdBu_r",
                   dpi: int = 100) -> bytes:
    """A matrix of one number a cell, written in the cell; None (undefined) cells are left blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [[float("nan") if v is None else v for v in row] for row in grid]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * max(3, len(cols)), 1.0 + 0.7 * max(3, len(rows))), dpi=dpi)
    im = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
