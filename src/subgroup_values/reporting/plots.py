"""One house style for every figure of the compendium (seaborn, colour-blind-safe, labels in words)."""

from __future__ import annotations

from pathlib import Path

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


def heatmap(table, ax=None, vmin: float = 0.0, vmax: float | None = None, fmt: str = ".2f",
            cbar_label: str = "", annot: bool = True):
    """A category x stratum (or similar) table as an annotated heatmap in the house colour map."""
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH, 0.36 * len(table) + 1.6))
    sns.heatmap(table, ax=ax, cmap=CMAP, vmin=vmin, vmax=vmax, annot=annot, fmt=fmt, annot_kws={"size": 7},
                linewidths=0.4, linecolor="white", cbar_kws={"label": cbar_label, "shrink": 0.8})
    ax.set(xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=35, labelsize=8)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")
    return ax


def ranking_with_intervals(df, value: str, lo: str, hi: str, label: str, ax=None, reference: dict | None = None,
                           reference_label: str = "paper (reported)"):
    """Dot-and-interval chart of ``value`` per row label (``df[label]``), optional reference markers."""
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH, 0.32 * len(df) + 1.2))
    y = range(len(df))
    ax.errorbar(df[value], y, xerr=[df[value] - df[lo], df[hi] - df[value]], fmt="o", color=PALETTE[0],
                ecolor=PALETTE[5], capsize=2, label="ours (95% bootstrap interval over questions)")
    if reference:
        ref = [(i, reference[c]) for i, c in enumerate(df[label]) if c in reference]
        ax.scatter([r for _, r in ref], [i for i, _ in ref], marker="D", color=PALETTE[3], zorder=3,
                   label=reference_label)
    ax.set_yticks(list(y), df[label])
    if not ax.yaxis_inverted():  # axes sharing y are inverted once
        ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    return ax


def answer_distributions(pairs_q, question, weighting: str = "weighted", ax=None):
    """Stacked horizontal bars: each subgroup's answer distribution on one question, its mode marked."""
    import numpy as np

    col = "weighted_counts" if weighting == "weighted" else "counts"
    dist = np.array([np.asarray(c, float) / np.sum(c) for c in pairs_q[col]])
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH, 0.22 * len(pairs_q) + 1.4))
    colors = sns.color_palette(CMAP, dist.shape[1])
    left = np.zeros(len(dist))
    for j, (value, text) in enumerate(question.options):
        ax.barh(range(len(dist)), dist[:, j], left=left, color=colors[j], label=f"{value}: {text}"[:38],
                edgecolor="white", linewidth=0.3)
        left += dist[:, j]
    ax.set_yticks(range(len(dist)), pairs_q["subgroup"], fontsize=7)
    if not ax.yaxis_inverted():  # axes sharing y are inverted once
        ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the subgroup's answers")
    ax.set_title(f"{question.qid}: {question.short_label}"[:80], fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title="answer")
    return ax


def grouped_intervals(df, x: str, y: str, hue: str, ax=None, lo: str = "lo", hi: str = "hi"):
    """Points with interval bars, one row per ``y``, dodged by ``hue``."""
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH / 2, 3))
    cats = list(dict.fromkeys(df[y]))
    hues = list(dict.fromkeys(df[hue]))
    offsets = np.linspace(-0.18, 0.18, len(hues)) if len(hues) > 1 else [0.0]
    for k, h in enumerate(hues):
        d = df[df[hue] == h].set_index(y).reindex(cats)
        pos = np.arange(len(cats)) + offsets[k]
        ax.errorbar(d[x], pos, xerr=[d[x] - d[lo], d[hi] - d[x]], fmt="o", color=PALETTE[k], capsize=2,
                    label=str(h), ms=4)
    ax.set_yticks(range(len(cats)), cats)
    if not ax.yaxis_inverted():  # axes sharing y are inverted once
        ax.invert_yaxis()
    ax.legend(fontsize=7, loc="best")
    return ax


def model_bars(df, value: str, ax=None):
    """Horizontal bars of ``value`` per model, coloured by kind (ours / baseline / open / closed), with the
    interval where the table has one (``<value>_lo``, ``<value>_hi``: ours and the baselines; the paper reports
    none for its models)."""
    colors = {"ours": PALETTE[3], "baseline": "0.55", "open": PALETTE[0], "closed": PALETTE[1]}
    d = df.dropna(subset=[value]).reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH / 2, 0.3 * len(d) + 1))
    ax.barh(range(len(d)), d[value], color=[colors.get(k, PALETTE[4]) for k in d["kind"]])
    if f"{value}_lo" in d and d[f"{value}_lo"].notna().any():
        has = d[f"{value}_lo"].notna()
        ax.errorbar(d.loc[has, value], d.index[has], xerr=[d.loc[has, value] - d.loc[has, f"{value}_lo"],
                                                            d.loc[has, f"{value}_hi"] - d.loc[has, value]],
                    fmt="none", ecolor="0.2", lw=0.8, capsize=2)
    ax.set_yticks(range(len(d)), d["model"], fontsize=7)
    if not ax.yaxis_inverted():  # axes sharing y are inverted once
        ax.invert_yaxis()
    for i, v in enumerate(d[value]):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colors.items() if k in set(d["kind"])]
    ax.legend(handles, [k for k in colors if k in set(d["kind"])], fontsize=6, frameon=False, loc="lower right")
    return ax


def base_vs_sft(table, metric: str, ax=None):
    """One point per subgroup: ``<metric>_base`` against ``<metric>_sft``, coloured by stratum, with the diagonal."""
    ax = ax or plt.gca()
    for j, (stratum, g) in enumerate(table.groupby("stratum")):
        ax.scatter(g[f"{metric}_base"], g[f"{metric}_sft"], s=14, color=PALETTE[j % len(PALETTE)], label=stratum)
    lo = min(table[f"{metric}_base"].min(), table[f"{metric}_sft"].min())
    hi = max(table[f"{metric}_base"].max(), table[f"{metric}_sft"].max())
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
    ax.set(xlabel=f"{metric}, base", ylabel=f"{metric}, SFT")
    return ax


#: How the headroom figure names a method: the study's words, not run identifiers (a name not listed is shown as
#: it is; the marginals template's runs add "with marginals").
METHOD_WORDS = {"base_ood": "zero-shot model", "sft_ood": "fine-tuned (modal loss)",
                "sft_distribution_ood": "fine-tuned (distribution loss)", "sft_disjoint": "fine-tuned, fold 0 (modal)",
                "sft_distribution_disjoint": "fine-tuned, fold 0 (distribution)", "raking": "raking (respondents)",
                "regression": "regression (respondents)", "log_linear": "log-linear composition",
                "compositional": "compositional (mean of marginals)", "population_mode": "population distribution",
                "population_mode_point": "population mode (point mass)", "true_mode": "true mode (oracle point mass)",
                "log_linear_leave_cell_out": "log-linear, the cell's respondents left out",
                "uniform": "uniform", "noise_floor": "noise floor"}


def method_words(name: str) -> str:
    """A method's name in the study's words (:data:`METHOD_WORDS`)."""
    if name.endswith("_marginals") and name[: -len("_marginals")] in METHOD_WORDS:
        return METHOD_WORDS[name[: -len("_marginals")]] + ", with marginals"
    for tag in ("_lb1", "_lb2"):
        if name.lower().endswith(tag):
            return method_words(name[: -len(tag)]) + (": point mass on its top option" if tag == "_lb1" else
                                                      ": point mass on its least likely option")
    return METHOD_WORDS.get(name, name)


def headroom(table, models: list[str] = (), metric: str = "tv", title: str | None = None):
    """Each method's distance with its interval, on all and on divergent pairs, between the noise floor and
    uniform (vertical lines); models in colour, non-LLM predictors in grey; methods named in the study's words."""
    from matplotlib.lines import Line2D

    subsets = [s for s in ("all", "divergent") if (table.pairs == s).any()]
    order = table[table.pairs == "all"].sort_values(metric, ascending=False).method.tolist()
    fig, axes = plt.subplots(1, len(subsets), figsize=(WIDTH, 0.24 * len(order) + 2.0), sharey=True, squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        t = table[table.pairs == subset].set_index("method").reindex(order)
        y = range(len(order))
        colours = ["C0" if m in models else ("C3" if m == "noise_floor" else "0.4") for m in order]
        ax.errorbar(t[metric], y, xerr=[t[metric] - t[f"{metric}_lo"], t[f"{metric}_hi"] - t[metric]], fmt="none",
                    ecolor="0.6", lw=1)
        ax.scatter(t[metric], y, c=colours, zorder=3, s=18)
        for m, style in (("noise_floor", ":"), ("uniform", "--")):
            if m in t.index:
                ax.axvline(t.loc[m, metric], color="0.3", ls=style, lw=0.8)
        ax.set_yticks(list(y), [method_words(m) for m in order], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        n = f", {int(t['n_pairs'].dropna().iloc[0]):,}" if "n_pairs" in t and t["n_pairs"].notna().any() else ""
        ax.set_title(f"{subset} pairs{n}", fontsize=8)
    legend = [Line2D([], [], ls="none", marker="o", color="C0", label="language model"),
              Line2D([], [], ls="none", marker="o", color="0.4", label="predictor without a model"),
              Line2D([], [], ls="none", marker="o", color="C3", label="noise floor"),
              Line2D([], [], color="0.3", ls=":", lw=0.8, label="floor"),
              Line2D([], [], color="0.3", ls="--", lw=0.8, label="uniform"),
              Line2D([], [], color="0.6", lw=1, label="95% interval over questions")]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=7, frameon=False, bbox_to_anchor=(0.5, -0.02))
    protocol = str(table.protocol.iloc[0]) if "protocol" in table and len(table) else ""
    fig.suptitle(title or f"How close each method comes to the subgroups' answers ({protocol} protocol)", fontsize=10)
    fig.supxlabel(f"{metric.upper()} to the subgroup's answer distribution (lower is closer)", fontsize=8, y=0.09)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
