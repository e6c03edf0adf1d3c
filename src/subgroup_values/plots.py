"""One house style for every figure of the compendium (seaborn, colour-blind-safe, labels in words)."""

from __future__ import annotations

from pathlib import Path

import matplotlib


import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

#: Okabe-Ito, safe for the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SPLIT_COLORS = {"train": PALETTE[0], "ood": PALETTE[1]}
SPLIT_LABELS = {"train": "training strata", "ood": "unseen intersections (OOD)"}
#: Sequential colour map for heatmaps (perceptually uniform, colour-blind-safe).
CMAP = "cividis"
WIDTH = 6.8  # inches: one column of a two-column paper page is ~3.3, full width ~6.8


def set_style() -> None:
    """Apply the house style (call once per notebook)."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.15,
                  rc={"figure.dpi": 110, "savefig.dpi": 200, "axes.titleweight": "bold",
                      "axes.spines.top": False, "axes.spines.right": False, "figure.autolayout": False,
                      "legend.frameon": False})


def save(fig: plt.Figure, name: str, fig_dir: str | Path) -> list[Path]:
    """Save ``fig`` as PNG and PDF under ``fig_dir``; returns the paths."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = fig_dir / f"{name}.{ext}"
        fig.savefig(p, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else {})
        paths.append(p)
    return paths


def subgroup_sizes(subgroups, ax=None):
    """Horizontal bars: respondents per subgroup, coloured by split, grouped by stratum."""
    import pandas as pd

    df = subgroups.copy()
    df["split_label"] = df["split"].map(SPLIT_LABELS)
    df["label"] = df["stratum"] + ": " + df["subgroup"]
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH, 0.17 * len(df) + 1))
    sns.barplot(data=df, y="label", x="n", hue="split_label", dodge=False, ax=ax,
                palette={SPLIT_LABELS[k]: v for k, v in SPLIT_COLORS.items()}, legend=True)
    ax.axvline(30, color="0.3", ls="--", lw=1, label="minimum size (30)")
    ax.set(xscale="log", xlabel="respondents (log scale)", ylabel="")
    ax.tick_params(axis="y", labelsize=6.5)
    ax.legend(title="", loc="lower right")
    return ax
