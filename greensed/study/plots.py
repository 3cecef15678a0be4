"""Plots of a report: F1 vs cumulative energy and energy per epoch, per run."""

from __future__ import annotations

from pathlib import Path

from greensed.study.report import Report


def plot_runs(rep: Report, out_dir: str | Path) -> list[Path]:
    """F1 vs cumulative kWh per run (stop and best epoch marked) and Wh per
    epoch per run, as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig1, ax1 = plt.subplots(figsize=(8, 5))
    fig2, ax2 = plt.subplots(figsize=(8, 5))
    for gi, (key, runs) in enumerate(rep.groups.items()):
        colour = colours[gi % len(colours)]
        for ri, s in enumerate(runs):
            label = f"{rep.by} {key}" if ri == 0 else None
            pts = s.points
            xy = [(kwh, f1 * 100) for _, kwh, f1, _ in pts if kwh is not None and f1 is not None]
            if xy:
                ax1.plot(*zip(*xy, strict=True), color=colour, alpha=0.8, lw=1, label=label)
            for ep, kwh, f1, _ in pts:
                if kwh is None or f1 is None:
                    continue
                if ep == s.best_epoch:
                    ax1.plot(kwh, f1 * 100, "o", color=colour, ms=6)
                if ep == s.stop_epoch:
                    ax1.plot(kwh, f1 * 100, "x", color="black", ms=7)
            e_pts = [(ep, e * 1000) for ep, _, _, e in pts if e is not None]
            if e_pts:
                ax2.plot(*zip(*e_pts, strict=True), color=colour, alpha=0.8, lw=1, label=label)
    ax1.plot([], [], "o", color="grey", label="best epoch")
    ax1.plot([], [], "x", color="black", label="stop epoch")
    ax1.set(xlabel="cumulative energy (kWh)", ylabel=f"{rep.metric} (%)",
            title="F1 vs cumulative energy, per run")
    ax2.set(xlabel="epoch", ylabel="energy per epoch (Wh)", title="Energy per epoch, per run")
    paths = []
    for fig, ax, name in ((fig1, ax1, "f1_vs_kwh.png"), (fig2, ax2, "wh_per_epoch.png")):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths
