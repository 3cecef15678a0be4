"""Plots of a report: F1 vs cumulative energy and energy per epoch, per run.

Each run is its own line, with its own marker and a legend entry naming it (group,
seed, or its directory when it has no seed); runs of one group share a colour.
Epoch axes have integer ticks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from greensed.study.report import Report, RunStats

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def run_label(rep: Report, key: str, s: RunStats) -> str:
    """``batch 16, seed 2``; the directory name for a run without a seed."""
    who = f"seed {s.seed}" if s.seed is not None else s.run_dir.name
    return f"{rep.by} {key}, {who}"


def figures(rep: Report) -> list[tuple[str, Any]]:
    """(file name, matplotlib figure) of each plot, not yet saved."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig1, ax1 = plt.subplots(figsize=(8, 5))
    fig2, ax2 = plt.subplots(figsize=(8, 5))
    n_runs = 0
    for gi, (key, runs) in enumerate(rep.groups.items()):
        colour = colours[gi % len(colours)]
        for ri, s in enumerate(runs):
            n_runs += 1
            style = {"color": colour, "marker": MARKERS[ri % len(MARKERS)], "ms": 4,
                     "alpha": 0.8, "lw": 1, "label": run_label(rep, key, s)}
            pts = s.points
            xy = [(kwh, f1 * 100) for _, kwh, f1, _ in pts if kwh is not None and f1 is not None]
            if xy:
                ax1.plot(*zip(*xy, strict=True), markevery=[len(xy) - 1], **style)
            for ep, kwh, f1, _ in pts:
                if kwh is None or f1 is None:
                    continue
                if ep == s.best_epoch:
                    ax1.plot(kwh, f1 * 100, "o", color=colour, ms=8, mfc="none")
                if ep == s.stop_epoch:
                    ax1.plot(kwh, f1 * 100, "x", color="black", ms=7)
            e_pts = [(ep, e * 1000) for ep, _, _, e in pts if e is not None]
            if e_pts:
                ax2.plot(*zip(*e_pts, strict=True), **style)
    ax1.plot([], [], "o", color="grey", ms=8, mfc="none", label="best epoch")
    ax1.plot([], [], "x", color="black", label="stop epoch")
    ax1.set(xlabel="cumulative energy (kWh)", ylabel=f"{rep.metric} (%)",
            title="F1 vs cumulative energy, per run")
    ax2.set(xlabel="epoch", ylabel="energy per epoch (Wh)", title="Energy per epoch, per run")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ncol = 1 + n_runs // 12
    out = []
    for fig, ax, name in ((fig1, ax1, "f1_vs_kwh.png"), (fig2, ax2, "wh_per_epoch.png")):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small" if n_runs > 6 else "small", ncol=ncol)
        fig.tight_layout()
        out.append((name, fig))
    return out


def plot_runs(rep: Report, out_dir: str | Path) -> list[Path]:
    """F1 vs cumulative kWh per run (stop and best epoch marked) and Wh per
    epoch per run, as PNG files in ``out_dir``."""
    figs = figures(rep)  # first: it picks the file-only backend
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs:
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths
