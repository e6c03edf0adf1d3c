"""Tables of the study: the paper beside ours, run times and what README and the rendered study quote from the results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core import claims, paper
from ..core.paths import REPO_ROOT
from ..stats.bootstrap import show
from ..stats.disparities import level_label


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured markdown table of ``df`` (index dropped)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _p_value(p: float) -> str:
    """A p-value as the tables print it: ``< 0.001``, ``0.012``; empty where there is none."""
    return "" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


# ---- the paper beside ours, and the README's results block (every number read from results/) ------------------

#: README's generated blocks of claims (``<!-- claims:NAME:begin -->`` ... ``<!-- claims:NAME:end -->``) and the
#: claims each states, in this order: ids of ``results/<profile>/claims/*.json``. This is the one place they are
#: listed: when a topic's claims land (fairness, open_ended, headroom), add their ids here.
README_CLAIMS = {
    "in_words": (
        "data.counts",
        "landscape.most_divided", "landscape.least_divided",
        "evaluation.base_ood.vs_uniform.accuracy.all", "evaluation.base_ood.vs_uniform.accuracy.divergent",
        "evaluation.base_ood.vs_uniform.tv.all", "evaluation.base_ood.vs_population_mode.accuracy.all",
        "evaluation.base_ood.vs_compositional.accuracy.all",
        "finetune.sft_ood.accuracy.all", "finetune.sft_ood.accuracy.consensus", "finetune.sft_ood.accuracy.divergent",
        "finetune.sft_distribution_ood.accuracy.divergent", "finetune.sft_ood.vs_sft_distribution_ood.accuracy.all",
        "generate.base_ood_generate.budget_sweep",
        "generate.base_ood_generate.cut", "generate.base_ood_generate.accuracy", "generate.sft_ood_generate.cut",
        "generate.base_ood_generate.refusal_sensitive", "generate.sft_ood_generate.refusal_sensitive",
    ),
    "data": ("data.counts", "data.ties", "data.question_rule"),
    "fairness": (
        "fairness.ood.accuracy.which_kind", "fairness.ood.nmae.which_kind", "fairness.ood.paradox",
        "fairness.ood.bias.*.accuracy",
    ),
    "first_screen": ("data.counts", "evaluation.base_ood.vs_population_mode.accuracy.all", "finetune.sft_ood.accuracy.all",
                     "finetune.sft_ood.accuracy.divergent", "evaluation.sft_ood.vs_population_mode.accuracy.all",
                     "fairness.ood.nmae.which_kind", "fairness.ood.paradox", "headroom.disjoint.worth.base_ood",
                     "headroom.disjoint.fold0.gap.*"),
    "run_times": ("timings.default.make_all", "timings.default.make_distribution", "timings.disjoint.make_all",
                  "timings.gemma.make_all"),
    # the second model's own findings on its sample (results/gemma/claims/), after its comparison with SmolLM2
    "models": ("models.gemma.*", "headroom.disjoint.worth.base_ood", "fairness.ood.accuracy.which_kind",
               "fairness.ood.paradox"),
    "headroom": (
        "headroom.paper.leak", "headroom.disjoint.floor", "headroom.disjoint.gap.*", "headroom.disjoint.base_ood",
        "headroom.disjoint.worth.base_ood", "headroom.disjoint.worth.uniform", "headroom.disjoint.prior_plus_10.*",
        "headroom.disjoint.fold*",
    ),
    "headroom_tur": (
        "headroom.paper.leak", "headroom.disjoint.floor", "headroom.disjoint.gap.*", "headroom.disjoint.base_ood",
        "headroom.disjoint.worth.base_ood", "headroom.disjoint.worth.uniform", "headroom.disjoint.prior_plus_10.*",
    ),
}
#: Blocks whose claims come from another profile's results (``results/<profile>/claims/``) than the one written.
README_BLOCK_PROFILE = {"headroom_tur": "tur", "models": "gemma"}


def claims_block(res_dir: str | Path, name: str, blocks: dict[str, tuple[str, ...]] | None = None) -> str:
    """README's generated block ``name``: the sentences of its claims (one bullet each), read from the profile."""
    blocks = README_CLAIMS if blocks is None else blocks
    if name not in blocks:
        raise KeyError(f"No claims block {name!r}; README's blocks are {sorted(blocks)}.")
    if name in README_BLOCK_PROFILE:
        res_dir = Path(res_dir).parent / README_BLOCK_PROFILE[name]
    return claims.render(claims.select(claims.read_profile_claims(res_dir), list(blocks[name]), res_dir), bullet=True)


def update_claim_blocks(readme: str | Path, res_dir: str | Path,
                        blocks: dict[str, tuple[str, ...]] | None = None) -> bool:
    """Rewrite every generated block of claims in README from the profile's claims; True when the file changed."""
    blocks = README_CLAIMS if blocks is None else blocks
    changed = False
    for name in blocks:
        changed = claims.update_block(readme, name, claims_block(res_dir, name, blocks)) or changed
    return changed


README_BEGIN = "<!-- results:begin (written by notebooks/07_paper_comparison.ipynb; do not edit by hand) -->"
README_END = "<!-- results:end -->"


def _shown(path: Path) -> str:
    """A path as the README shows it: relative to the repository when inside it."""
    from ..core.paths import REPO_ROOT

    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _by(metrics: dict, key: str = "by_subset") -> dict:
    return {(r["subset"], r["metric"]): r for r in metrics[key]}


def load_metrics(res_dir: str | Path, run: str) -> dict | None:
    path = Path(res_dir) / run / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def paper_comparison(res_dir: str | Path, manifest: dict, profile: str, model_label: str,
                     base_run: str = "base_ood", sft_run: str = "sft_ood") -> pd.DataFrame:
    """Each number the paper reports (from :mod:`.paper`), ours for the same quantity, and what differs."""
    res_dir = Path(res_dir)
    rows = []

    def add(section, quantity, reported, ours, differs=""):
        rows.append({"section": section, "quantity": quantity, "paper (reported)": reported, "ours": ours,
                     "profile / model": f"{profile} / {model_label}" if section not in ("data", "landscape")
                     else "survey file", "what differs": differs})

    P, c = paper.DATASET, manifest["counts"]
    add("data", "questions", P["questions"], c["questions"], f"our rule: {manifest['rule']['question_rule']} "
        "(drop the zero-based 3-point items); the paper's rule is not stated (see the rule search)")
    add("data", "train / OOD subgroups", f"{P['train_subgroups']} / {P['ood_subgroups']}",
        f"{c['subgroups']['train']} / {c['subgroups']['ood']}")
    add("data", "train / OOD / total pairs", f"{P['train_pairs']:,} / {P['ood_pairs']:,} / {P['total_pairs']:,}",
        f"{c['pairs']['train']:,} / {c['pairs']['ood']:,} / {c['pairs']['total']:,}",
        "rule found here: drop pairs with < 30 answers")
    land_path = res_dir / "landscape" / "category_ranking.csv"
    ranks_path = res_dir / "landscape" / "category_ranks.csv"
    if land_path.is_file():
        land = pd.read_csv(land_path).set_index("category")
        ranks = pd.read_csv(ranks_path).set_index("category") if ranks_path.is_file() else None
        for cat, val in paper.LANDSCAPE.items():
            rank = (f"rank {int(ranks.loc[cat, 'rank'])} of {len(ranks)} (95% interval of the rank "
                    f"{int(ranks.loc[cat, 'rank_lo'])}-{int(ranks.loc[cat, 'rank_hi'])})" if ranks is not None
                    else f"rank {list(land.index).index(cat) + 1} of {len(land)} (no interval of the rank)")
            add("landscape", f"mean MDS, {cat}", val, round(land.loc[cat, "mds"], 3),
                f"95% CI [{land.loc[cat, 'mds_lo']:.3f}, {land.loc[cat, 'mds_hi']:.3f}]; {rank}")
    base, sft = load_metrics(res_dir, base_run), load_metrics(res_dir, sft_run)
    om = paper.OOD_RESULTS.set_index("model").loc["open-model mean"]
    best = paper.OOD_RESULTS.set_index("model").loc["GPT-4.1"]
    if base:
        bb = _by(base)
        add("zero-shot (OOD)", "accuracy", f"{om.acc_base:.3f} (open mean); GPT-4.1 {best.acc_base:.3f}",
            round(bb[("all", "accuracy")]["estimate"], 3), "135M model vs 3B-8B/GPT-4.x; prompt wording ours")
        add("zero-shot (OOD)", "NMAE", f"{om.nmae_base:.3f} (open mean); GPT-4.1 {best.nmae_base:.3f}",
            round(bb[("all", "nmae")]["estimate"], 3), "as above")
        add("zero-shot (OOD)", "accuracy on consensus / divergent pairs", "not reported",
            f"{bb[('consensus', 'accuracy')]['estimate']:.3f} / {bb[('divergent', 'accuracy')]['estimate']:.3f}",
            "our addition")
        if base.get("option_mass"):
            add("zero-shot (OOD)", "probability mass on the options (mean / min)", "not reported",
                f"{base['option_mass']['mean']:.3f} / {base['option_mass']['min']:.3f}", "our addition")
        for b in ("population_mode", "compositional", "uniform"):
            x = {(r["subset"], r["metric"]): r for r in base["baselines"][b]}
            add("baselines (OOD)", f"{b}: accuracy (all / consensus / divergent)", "not reported",
                f"{x[('all', 'accuracy')]['estimate']:.3f} / {x[('consensus', 'accuracy')]['estimate']:.3f} / "
                f"{x[('divergent', 'accuracy')]['estimate']:.3f}", "no LLM; our addition")
    if base and sft:
        bb, bs = _by(base), _by(sft)
        recipe = finetune_words(res_dir / "finetune", manifest["counts"]["pairs"]["train"])
        add("fine-tuning (OOD)", "accuracy base -> SFT",
            f"{om.acc_base:.3f} -> {om.acc_sft:.3f} ({100 * (om.acc_sft - om.acc_base):+.1f} points)",
            f"{bb[('all', 'accuracy')]['estimate']:.3f} -> {bs[('all', 'accuracy')]['estimate']:.3f} "
            f"({100 * (bs[('all', 'accuracy')]['estimate'] - bb[('all', 'accuracy')]['estimate']):+.1f} points)",
            recipe)
        add("fine-tuning (OOD)", "NMAE base -> SFT", f"{om.nmae_base:.3f} -> {om.nmae_sft:.3f}",
            f"{bb[('all', 'nmae')]['estimate']:.3f} -> {bs[('all', 'nmae')]['estimate']:.3f}", "as above")
        add("fine-tuning (OOD)", "divergent-pair accuracy base -> SFT", "not reported",
            f"{bb[('divergent', 'accuracy')]['estimate']:.3f} -> {bs[('divergent', 'accuracy')]['estimate']:.3f}",
            "our addition")
    fair_path = res_dir / "fairness" / "disparity_table.csv"
    if fair_path.is_file():
        for r in pd.read_csv(fair_path).to_dict("records"):
            if r.get("kind") not in ("relative", "absolute"):
                continue
            reported = r.get("paper base -> SFT (reported mean)")
            add("fairness (OOD)", f"{r['label']} ({r['kind']}) base -> SFT",
                reported if isinstance(reported, str) else "not reported",
                f"{r['base']:.3f} -> {r['SFT']:.3f} (delta {level_label(r['delta_level'])} "
                f"{r['interval'].split(' ')[0]} CI [{r['delta_lo']:.3f}, {r['delta_hi']:.3f}] at Holm's step-down "
                f"level; Holm-adjusted permutation p {_p_value(r['p_holm'])}): {r['verdict']}",
                "paper: mean over 7 models, no intervals" if isinstance(reported, str) else "our addition")
    bias_path = res_dir / "fairness" / "paper_bias.csv"
    if bias_path.is_file():
        bias = pd.read_csv(bias_path, keep_default_na=False, na_values=[""])
        if "matching" not in bias:
            bias["matching"] = "all subgroups"
        on_ood = set(bias[(bias.split == "ood") & bias.testable].contrast)
        for (contrast, matching), g in bias[bias.metric == "accuracy"].groupby(["contrast", "matching"], sort=False):
            g = g[g.split == "ood"] if contrast in on_ood else g[g.split != "ood"]
            if g.empty:
                continue
            split = g.split.iloc[0]
            cells = [f"{'base' if r.model == 'base' else 'SFT'} {r.difference:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] "
                     f"({level_label(r.level)}, Holm p {_p_value(r.p_holm)}): {r.verdict}" if r.testable else
                     f"{'base' if r.model == 'base' else 'SFT'}: {r.verdict}" for r in g.itertuples()]
            ood_notes = bias[(bias.split == "ood") & (bias.contrast == contrast) & (bias.matching == matching)].note
            why = [f"OOD: {n}" for n in ood_notes.dropna().unique() if split != "ood"] + [
                n for n in g.note.dropna().unique() if n]
            add(f"bias ({'OOD' if split == 'ood' else split + ' split, ' + str(g.pairs.iloc[0]) + ' sampled pairs'})",
                f"{contrast} ({matching}): accuracy difference, {g.favoured.iloc[0]} - {g.disfavoured.iloc[0]}",
                g.paper.iloc[0],
                "; ".join(cells), "; ".join(["paired over questions, two-stage interval; the paper gives no test",
                                             *why]))
    refusal = _refusal_row(res_dir)
    if refusal:
        a, b = paper.REFUSALS_SENSITIVE
        add("refusals", "refusal rate on sensitive items base -> SFT", f"{a:.2%} -> {b:.0%}", *refusal)
    oe_path = res_dir / "claims" / "open_ended.json"
    if oe_path.is_file():  # the open-ended rows are the claims of notebook 06 (never a degenerate interval)
        from ..core.claims import by_id, read_claims

        oe = by_id(read_claims(oe_path))
        judge = next((c for c in oe.values() if c.id.startswith("open_ended.judge.")), None)
        for crit, gain in paper.OPEN_ENDED_GAIN.items():
            c = oe.get(f"open_ended.win_rate.{crit.lower()}")
            if c is not None:
                add("open-ended", f"{crit}: SFT vs base", f"+{100 * gain:.1f} points (vs GPT-4.1 reference)",
                    c.sentence, "our judge validated first (" + (judge.verdict if judge else "not validated")
                    + "); reference = our base model; the paper's judge: 24B, not validated")
        reader = oe.get("open_ended.reader.validation")
        for c in oe.values():
            if c.id.startswith("open_ended.readback_change.") and c.id.endswith(".tv"):
                add("open-ended", "free text read back onto the survey scale: TV base -> SFT", "not reported",
                    c.sentence.split("; reader")[0], "our addition (no judge); reader validation "
                    + (reader.sentence.split("with accuracy ")[-1].rstrip(".") if reader else "missing"))
    else:  # a row that says why, never a number from a judge that was not validated
        for crit, gain in paper.OPEN_ENDED_GAIN.items():
            add("open-ended", f"{crit}: SFT vs base", f"+{100 * gain:.1f} points (vs GPT-4.1 reference)",
                f"not measured: no {_shown(oe_path)} (notebook 06 has not run since its judge is validated first; "
                "`make open-ended`)", "")
    return pd.DataFrame(rows)


def _refusal_row(res_dir: Path) -> tuple[str, str] | None:
    """Ours and "what differs" for the paper's refusal rate: the generate-mode claims of the refusal runs (a sample
    of the sensitive items) or, without them, of the generate runs, each rate with its Wilson interval."""
    path = claims.claims_path(res_dir, "generate")
    if not path.is_file():
        return None
    have = claims.by_id(claims.read_claims(path))
    for base, sft, what in (("base_ood_refusals", "sft_ood_refusals", "a seeded sample of the sensitive items' pairs"),
                            ("base_ood_generate", "sft_ood_generate", "the sensitive items' pairs of a seeded OOD "
                                                                       "sample")):
        b, s = (have.get(f"generate.{r}.refusal_sensitive") for r in (base, sft))
        if b and s:
            def rate(c):
                return f"{c.estimate:.1%} [{c.lo:.1%}, {c.hi:.1%}]"
            return (f"{rate(b)} -> {rate(s)} ({b.extra['pairs']} pairs; {b.verdict})",
                    f"generate mode on {what}; Wilson 95% intervals over pairs")
    return None


def finetune_words(finetune_dir: str | Path, total_train_pairs: int) -> str:
    """The paper comparison's "what differs" for fine-tuning, from the fine-tunes' run records (training pairs,
    loss, LoRA rank, learning rate) beside the paper's recipe (``configs/sft/paper.yaml``)."""
    import yaml

    from ..analysis.findings import recipe_words
    from ..core.paths import REPO_ROOT

    parts = []
    for name, label in (("sft", "modal SFT"), ("sft_distribution", "distribution SFT")):
        f = Path(finetune_dir) / f"{name}_run.json"
        if f.is_file():
            parts.append(f"{label}: {recipe_words(json.loads(f.read_text()), total_train_pairs)}")
    theirs = REPO_ROOT / "configs" / "sft" / "paper.yaml"
    if theirs.is_file():
        p = yaml.safe_load(theirs.read_text())
        parts.append("the paper's recipe (configs/sft/paper.yaml): " + ", ".join(
            f"{label} {p[k]:g}" if isinstance(p.get(k), (int, float)) else f"{label} {p.get(k)}"
            for k, label in (("learning_rate", "learning rate"), ("lora_r", "LoRA r"), ("num_train_epochs", "epochs"))
            if k in p))
    return "; ".join(parts) if parts else "fine-tune records not found"


#: The generate-mode runs README's results block lists (those on disk).
GENERATE_RUNS = ("base_ood_generate", "sft_ood_generate", "base_ood_refusals", "sft_ood_refusals")


def readme_block(res_dir: str | Path, data_dir: str | Path) -> str:
    """The README's results: the OOD table, the generate-mode and fairness findings, the paper comparison and
    the question-rule search, all read from ``res_dir`` and ``data_dir`` (never typed)."""
    res_dir, data_dir = Path(res_dir), Path(data_dir)
    out = []
    runs = {k: load_metrics(res_dir, k) for k in ("base_ood", "sft_ood", "sft_distribution_ood", *GENERATE_RUNS)}
    base = runs["base_ood"]
    if base:
        bb = _by(base)
        n = {s: bb[(s, "accuracy")]["pairs"] for s in ("all", "consensus", "divergent")}
        out.append(f"| OOD, accuracy [95% CI] ({n['all']:,} pairs) | all pairs | consensus ({n['consensus']:,}) | "
                   f"divergent ({n['divergent']:,}) |\n|---|---|---|---|")

        def line(name, by):
            cells = [show(by[(s, 'accuracy')]['estimate'], by[(s, 'accuracy')]['lo'], by[(s, 'accuracy')]['hi'],
                          by[(s, 'accuracy')].get('degenerate')) for s in ("all", "consensus", "divergent")]
            out.append(f"| {name} | " + " | ".join(cells) + " |")

        line("base model", bb)
        if runs["sft_ood"]:
            line("SFT model (modal loss)", _by(runs["sft_ood"]))
        if runs["sft_distribution_ood"]:
            line("SFT model (distribution loss)", _by(runs["sft_distribution_ood"]))
        for b in ("population_mode", "compositional", "uniform"):
            line(f"{b} baseline", {(r["subset"], r["metric"]): r for r in base["baselines"][b]})
        out.append("")
        if base.get("option_mass"):
            m = base["option_mass"]
            out.append(f"The base model puts on average {m['mean']:.0%} of its next-token probability after "
                       f"`Answer:` on the options (median {m['median']:.0%}, minimum {m['min']:.0%}; under half on "
                       f"{m['share_below_half']:.0%} of pairs): its option distribution is renormalised over what "
                       "is often a minority of its probability.\n")
    for run in GENERATE_RUNS:
        g = runs[run]
        if g:
            by = _by(g)
            st = g.get("status_counts", {})
            cut = g.get("cut_at_budget") or {}
            budget = (f"; cut at the budget of {cut['max_new_tokens']} new tokens: {cut['cut']} of {cut['known']}"
                      if cut.get("known") else
                      f"; budget {g.get('config', {}).get('max_new_tokens')} new tokens (cut replies not recorded)")
            out.append(f"- `{run}` ({g['pairs']} pairs, generate mode): accuracy {by[('all', 'accuracy')]['estimate']:.3f} "
                       f"[{by[('all', 'accuracy')]['lo']:.3f}, {by[('all', 'accuracy')]['hi']:.3f}]; reply statuses "
                       + ", ".join(f"{k} {v}" for k, v in sorted(st.items(), key=lambda kv: -kv[1])) + budget + ".")
    out += headroom_block(res_dir)
    fair = res_dir / "fairness" / "disparity_table.csv"
    if fair.is_file():
        t = pd.read_csv(fair)
        rules = t.loc[t.family == "dispersion", "rule"]
        out.append(f"\nFairness (dispersion over OOD subgroups, question-adjusted subgroup means, base -> SFT; delta "
                   f"with the {t.interval.iloc[0]} interval that decides, at its level (Holm's step-down level over "
                   f"the dispersion family), and the questions-only one at the same level; verdict: "
                   f"{rules.iloc[0] if len(rules) else ''}):\n")
        keep = ["label", "kind", "base", "SFT", "delta", "delta_level", "delta_lo", "delta_hi", "delta_lo_questions_only",
                "delta_hi_questions_only", "p_permutation", "p_holm", "p_interval_holm", "verdict"]
        t = t.assign(**{c: t[c].map(_p_value) for c in ("p_permutation", "p_holm", "p_interval_holm") if c in t})
        if "delta_level" in t:
            t = t.assign(delta_level=t.delta_level.map(level_label))
        out.append(markdown_table(t[[c for c in keep if c in t]]))
    comp = res_dir / "paper_comparison.md"
    if comp.is_file():
        out.append("\nEvery number the paper reports, beside ours (`" + _shown(comp) + "`):\n")
        out.append(comp.read_text())
    timings = res_dir / "timings.csv"
    if timings.is_file():
        out.append(timing_block(pd.read_csv(timings, keep_default_na=False)))
    rules = data_dir / "question_rule_search.csv"
    if rules.is_file():
        s = json.loads((data_dir / "question_rule_search.json").read_text())
        out.append(f"\nQuestion-rule search (`{_shown(rules)}`): {s['droppable_items']} items can be dropped "
                   f"without changing the pair counts; {s.get('unions_total', 0):,} unions of whole questionnaire "
                   f"batteries have 19 such items; of the first {s['unions_enumerated']:,} in questionnaire order, "
                   f"{s['unions_fitting_both']:,} match both landscape numbers within {s['unions_fitting_both_within']}: "
                   "the counts and the two numbers do not identify the paper's rule. Our rule and the closest "
                   "unions:\n")
        r = pd.read_csv(rules)
        out.append(markdown_table(r.drop(columns=["counts_match"])))
    return "\n".join(out).rstrip() + "\n"


def headroom_block(res_dir: str | Path) -> list[str]:
    """The README's headroom lines, read from ``results/<profile>/headroom/``: per protocol (``paper``, and
    ``disjoint`` where computed) every method's TV with its interval, log score, Brier and SimBench's normalised
    score on all and divergent pairs, then the generated claims (``results/<profile>/claims/headroom.json``)."""
    from ..core.claims import read_claims, render

    hdir = Path(res_dir) / "headroom"
    out = []
    for name, label in (("headroom.csv", "paper protocol (inputs and targets share respondents)"),
                        ("headroom_disjoint.csv", "disjoint protocol (inputs from the other respondent folds; other targets: "
                                                   "the cells with 30+ per fold, at half their size, so not "
                                                   "comparable row by row with the paper table)")):
        table = hdir / name
        if not table.is_file():
            continue
        t = pd.read_csv(table)
        out.append(f"\nHow much is there to emulate, {label}: every method as a distribution, from the noise floor "
                   f"up to uniform (`{_shown(table)}`, where each model's LB1/LB2 point masses are too; 95% BCa "
                   "intervals over questions; log score in bits):\n")
        rows = []
        shown = t[t.pairs.isin(["all", "divergent"]) & ~t.method.str.endswith(("_lb1", "_lb2"))]
        for _, r in shown.iterrows():
            has = "tv_lo" in r and pd.notna(r.get("tv_lo"))
            rows.append({"pairs": r["pairs"], "method": r["method"], "n_pairs": int(r["n_pairs"]),
                         "TV [95% CI]": f"{r['tv']:.3f} [{r['tv_lo']:.3f}, {r['tv_hi']:.3f}]" if has else "",
                         "log score": "" if pd.isna(r.get("log_score")) else f"{r['log_score']:.3f}",
                         "Brier": "" if pd.isna(r.get("brier")) else f"{r['brier']:.3f}",
                         "normalised": "" if pd.isna(r.get("normalised")) else f"{r['normalised']:.1f}"})
        out.append(markdown_table(pd.DataFrame(rows)))
    found = Path(res_dir) / "claims" / "headroom.json"
    if found.is_file():
        out.append("\n" + render(read_claims(found), bullet=True).rstrip())
    return out


def _answers_computed(step: str, results_dir: Path) -> tuple[int | None, int | None]:
    """How many model answers a model step computed itself, and how many it needed (None: not known): an evaluation
    step's run record says both (``timing.pairs_computed`` of ``pairs``), the open-ended step's the computed ones.
    The rest came from the response cache, so the step's time is not a fresh machine's."""
    if step.startswith("03_evaluate__"):
        record = results_dir / step.split("__", 1)[1] / "metrics.json"
        if record.is_file():
            rec = json.loads(record.read_text())
            computed = (rec.get("timing") or {}).get("pairs_computed")
            return (int(computed) if computed is not None else None), int(rec.get("pairs") or 0) or None
    if step == "06_open_ended":
        record = results_dir / "open_ended" / "provenance.json"
        if record.is_file():
            timings = json.loads(record.read_text()).get("timings") or {}
            if timings:
                return int(sum(int(v[1]) for v in timings.values())), None
    return None, None


def step_timings(timings_file: str | Path, finetune_dir: str | Path | None = None,
                 previous: str | Path | None = None, results_dir: str | Path | None = None) -> pd.DataFrame:
    """The latest wall time and peak memory of every step of a profile (from the runner's ``timings.tsv``), in the
    order the steps last ran. A fine-tune step (``04_finetune`` or ``04_finetune__<run>``) whose run record is in
    ``finetune_dir`` (``sft_run.json`` or ``<run>_run.json``) says its training pairs, loss and seconds.

    ``previous`` (the profile's committed ``timings.csv``): the steps that did not run here keep their last
    recorded row (their ``finished`` date says when), so a single step run on its own never shortens the table
    (with no ``timings_file`` here, the table is the previous one, checked again).

    ``results_dir`` (the profile's results): a model step that took answers from the response cache says so
    (``from_cache``: True where it did, and its note how many it computed), because its time is then not the time a
    fresh machine takes."""
    path = Path(timings_file)
    if not path.is_file() and not (previous is not None and Path(previous).is_file()):
        raise FileNotFoundError(f"No step timings at {path}: run `make all` for the profile first.")
    # four columns before the runner recorded the load; six since (load_mean: the machine's mean 1-minute load
    # average over the step; cpu_seconds: the step's own CPU time); seven since it records the cores it could use
    cols = ["finished", "step", "seconds", "peak_mb", "load_mean", "cpu_seconds", "cores"]
    rows = []
    for i, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) not in (4, 6, 7):
            raise ValueError(f"{path}, line {i}: {len(f)} columns; expected 4, 6 or 7 (the runner's timings).")
        rows.append(f + ["nan"] * (7 - len(f)))
    t = pd.DataFrame(rows, columns=cols)
    for c in ("seconds", "peak_mb", "load_mean", "cpu_seconds", "cores"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    t["peak_mb"] = t["peak_mb"].round().astype("Int64")
    t["cores"] = t["cores"].round().astype("Int64")
    t = t.drop_duplicates("step", keep="last")
    t["minutes"] = (t["seconds"] / 60).round(1)
    t["note"] = ""
    t["from_cache"] = pd.array([pd.NA] * len(t), dtype="boolean")
    keep = ["step", "minutes", "peak_mb", "load_mean", "cores", "finished", "from_cache", "note"]
    if previous is not None and Path(previous).is_file():
        old = pd.read_csv(previous, keep_default_na=False)
        old = old[~old["step"].isin(t["step"])].copy()
        for c in ("load_mean", "cores"):
            old[c] = pd.to_numeric(old[c], errors="coerce") if c in old else float("nan")
        old["cores"] = old["cores"].round().astype("Int64")
        old["from_cache"] = (old["from_cache"].map({"True": True, "False": False, True: True, False: False})
                             .astype("boolean") if "from_cache" in old else pd.array([pd.NA] * len(old), dtype="boolean"))
        t = pd.concat([old[keep], t], ignore_index=True)
    t = t.sort_values("finished", kind="stable").reset_index(drop=True)
    # a model step's answers: the record of the step's last run (a kept row's too: its record is that run's)
    for i, step in (t["step"].items() if results_dir is not None else ()):
        computed, needed = _answers_computed(str(step), Path(results_dir))
        if computed is None:
            continue
        cached = computed < needed if needed is not None else computed == 0
        t.loc[i, "from_cache"] = cached
        if needed is not None:
            t.loc[i, "note"] = (f"{computed:,} of {needed:,} pairs computed" +
                                (", the rest from the response cache" if cached else ""))
        else:
            t.loc[i, "note"] = (f"{computed:,} answers computed" if computed else
                                "no answer computed: every answer from the response cache")
    for i, step in t["step"].items():
        if not finetune_dir or not str(step).startswith("04_finetune"):
            continue
        run = step.split("__", 1)[1] if "__" in step else "sft"
        record = Path(finetune_dir) / f"{run}_run.json"
        if record.is_file():
            rec = json.loads(record.read_text())
            tr = rec.get("training", {})
            loss = rec.get("config", {}).get("script", {}).get("loss", "modal")
            resumed = tr.get("resumed_from")
            # a fine-tune resumed from a checkpoint did not take a fresh machine's time either
            t.loc[i, "from_cache"] = resumed is not None
            t.loc[i, "note"] = (f"{rec['data']['train_pairs']:,} training pairs, {loss} loss, "
                                f"{tr.get('trainer', 'trl')} trainer: {tr['seconds'] / 60:.1f} min training, "
                                f"{tr.get('examples_per_second', 0):.1f} examples/s"
                                + (", resumed from a checkpoint" if resumed is not None else ""))
    return t[keep]


#: The time `make all` of the default profile must stay within on the project's 2-core machines (minutes).
TIME_BUDGET_MINUTES = 90
#: A step whose machine's mean 1-minute load exceeded this shared the 2 cores with other work (a step's own torch
#: threads load the machine to about 2).
QUIET_LOAD = 2.5


#: Make targets of a profile that `make all` leaves to their own command (its time budget): the steps of each.
#: Kept beside the Makefile's own lists (``DIST_STEPS``); tests/test_makefile.py checks the two agree.
#: Steps recorded more than this many minutes apart (one's start after the previous one's end) ran in separate
#: sessions: their sum is then not one run's wall time.
SESSION_GAP_MINUTES = 5.0
#: The steps that write the timing table (step 7) or come after it are not in it for their own run.
UNTIMED_STEPS = ("07_paper_comparison",)
#: A model step: its time depends on whether it computed its answers (evaluations, fine-tunes, open-ended answers).
MODEL_STEPS = ("03_evaluate", "04_finetune", "06_open_ended")


def _sessions(t: pd.DataFrame) -> list[tuple[str, str]]:
    """The spans (first start, last end) in which the rows' steps ran: a new one where a step started more than
    SESSION_GAP_MINUTES after the previous step ended (a step's start: its end less its minutes)."""
    end = pd.to_datetime(t["finished"], errors="coerce")
    if end.isna().any():
        return []
    order = end.sort_values().index
    spans, last = [], None
    for i in order:
        start = end[i] - pd.Timedelta(minutes=float(t.loc[i, "minutes"]))
        if last is None or (start - last) > pd.Timedelta(minutes=SESSION_GAP_MINUTES):
            spans.append([start, end[i]])
        else:
            spans[-1][1] = max(spans[-1][1], end[i])
        last = end[i] if last is None else max(last, end[i])
    return [(a.strftime("%Y-%m-%d %H:%M"), b.strftime("%Y-%m-%d %H:%M")) for a, b in spans]


def _expected_steps(profile: str, separate: dict) -> set[str] | None:
    """The steps of the profile's `make all` as its plan declares them (None where the profile has no config)."""
    from ..core import plan

    try:
        steps = {nb.removesuffix(".ipynb") for nb in plan.make_all(profile)}
    except (FileNotFoundError, plan.PlanError, KeyError):
        return None
    return steps - set(UNTIMED_STEPS) - {s for v in separate.values() for s in v}


def timing_claims(timings: pd.DataFrame, profile: str, source: str, budget: float = TIME_BUDGET_MINUTES,
                  expected: set[str] | None = None) -> list:
    """The time of a profile's `make all` and of each target it leaves to its own command (the runs with ``target:``
    in its config, :func:`subgroup_values.core.plan.separate_targets`): the sum of their steps' last recorded wall
    times (``timings``: a :func:`step_timings` table; step 7, which writes it, not counted), the longest step, the
    sessions the rows were recorded in, and, for the default profile's `make all`, whether it stays within
    ``budget`` minutes. That verdict is given only when it can be: every step of the plan (``expected``; by default
    the profile's plan) has a time, every model step is known to have computed its answers itself (``from_cache``
    False: not served by the response cache, not resumed), and the steps ran in one session; otherwise the sum is
    reported with the reason it is not judged."""
    if timings.empty:
        return []
    from ..core.plan import separate_targets

    known = profile in {p.stem for p in (REPO_ROOT / "configs").glob("*.yaml")}
    separate = separate_targets(profile) if known else {}
    apart = {s for steps in separate.values() for s in steps}
    timings = timings[~timings["step"].isin(UNTIMED_STEPS)]
    if expected is None and known:
        expected = _expected_steps(profile, separate)
    groups = [("all", timings[~timings["step"].isin(apart)], expected)] + \
        [(t, timings[timings["step"].isin(steps)], set(steps)) for t, steps in separate.items()]
    out = []
    for target, t, want in groups:
        if t.empty:
            continue
        total = float(t["minutes"].sum())
        longest = t.loc[t["minutes"].idxmax()]
        dates = sorted(str(d) for d in t["finished"])
        sessions = _sessions(t)
        command = f"make {target} PROFILE={profile}"
        missing = sorted(set(want or ()) - set(t["step"]))
        # a model step that took its answers from the response cache (or resumed) did not take a fresh machine's
        # time; one whose record does not say is unknown, and neither is judged
        model = t["step"].astype(str).str.startswith(MODEL_STEPS)
        flag = t["from_cache"].astype(str) if "from_cache" in t else pd.Series("", t.index)
        cached = model & flag.eq("True")
        unknown_cache = model & ~flag.isin(["True", "False"])
        resumed = cached & t["step"].astype(str).str.startswith("04_finetune")
        n_resumed = int(resumed.sum())
        n_cached = int(cached.sum())
        n_unknown = int(unknown_cache.sum())
        judged = target == "all" and profile == "default"
        # what else ran: the runner records each step's mean load (older rows have none)
        load = pd.to_numeric(t["load_mean"], errors="coerce") if "load_mean" in t else pd.Series(float("nan"), t.index)
        busy, no_load = int((load > QUIET_LOAD).sum()), int(load.isna().sum())
        busy_min = float(t.loc[load > QUIET_LOAD, "minutes"].sum())
        if no_load == len(t):
            shared = "no step's machine load was recorded, so whether other work shared the cores is not known"
        elif busy:
            shared = (f"{busy} of its {len(t)} steps ({busy_min:.1f} min) ran with the machine's mean load above "
                      f"{QUIET_LOAD:g}, so they shared the cores with other work")
        else:
            shared = f"no step with a recorded load ran above a mean load of {QUIET_LOAD:g}"
        if no_load and no_load < len(t):
            shared += f"; {no_load} step{'s' if no_load > 1 else ''} without a recorded load"
        reasons = []
        if missing:
            reasons.append(f"{len(missing)} of the plan's steps have no recorded time ({', '.join(missing[:4])}"
                           f"{' ...' if len(missing) > 4 else ''})")
        if len(sessions) > 1:
            reasons.append("the sum is not one run's wall time")
        if n_cached - n_resumed:
            served = t.loc[cached & ~resumed, "minutes"].sum()
            reasons.append(f"{n_cached - n_resumed} of its {len(t)} steps ({served:.1f} min with cached answers) took "
                           "their model answers from the response cache (`cache/responses.sqlite`), so this is not the "
                           "time of a fresh machine, which computes every answer")
        if n_resumed:
            reasons.append(f"{n_resumed} fine-tune{'s' if n_resumed > 1 else ''} resumed from a checkpoint, so "
                           f"{'their times are' if n_resumed > 1 else 'its time is'} not a whole fine-tune's")
        if n_unknown:
            reasons.append(f"whether {n_unknown} model step{'s' if n_unknown > 1 else ''} computed {'their' if n_unknown > 1 else 'its'} "
                           "answers or took them from the response cache is not recorded")
        if not n_cached and not n_unknown and model.any():
            shared = f"every model step computed its answers itself; {shared}"
        verdict = ("within the budget" if total <= budget else "over the budget") if judged and not reasons else ""
        why = "; ".join(reasons + [shared])
        tail = (f": within the budget of {budget:g} min ({why})." if verdict == "within the budget" else
                f": over the budget of {budget:g} min as measured ({why})." if verdict else
                f": not judged against the budget of {budget:g} min ({why})." if judged else f" ({why}).")
        cores = pd.to_numeric(t["cores"], errors="coerce") if "cores" in t else pd.Series(float("nan"), t.index)
        n_cores = sorted({int(c) for c in cores.dropna()})
        on = (f" on {n_cores[0]} CPU cores" if len(n_cores) == 1 else
              f" on {' or '.join(map(str, n_cores))} CPU cores" if n_cores else "")
        about = ("" if n_cores and not cores.isna().any() else
                 f"; {int(cores.isna().sum())} of its steps without a recorded core count" if n_cores else
                 "; CPU cores not recorded")
        when = (f"recorded in one session, {sessions[0][0]} to {sessions[0][1][11:] if sessions[0][0][:10] == sessions[0][1][:10] else sessions[0][1]}"
                if len(sessions) == 1 else
                f"recorded in {len(sessions)} sessions between {sessions[0][0]} and {sessions[-1][1]}" if sessions else
                f"steps finished {dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')}")
        out.append(claims.Claim(
            id=f"timings.{profile}.make_{target}", topic="timings", statistic=f"minutes of {command}",
            estimate=round(total, 1), verdict=verdict, source=source,
            method=("sum of the steps' wall times (the runner's timings, the last recorded run of each step; step 7, "
                    "which writes this, and the page's rendering are not counted); sessions: steps more than "
                    f"{SESSION_GAP_MINUTES:g} min apart"),
            rule=(f"within the budget if the sum is at most {budget:g} minutes, every step of the plan has a time, the "
                  "steps ran in one session and every model step computed its answers itself") if judged else "",
            extra={"steps": int(len(t)), "first_finished": dates[0], "last_finished": dates[-1],
                   "sessions": len(sessions), "steps_missing": missing, "steps_from_cache": n_cached,
                   "steps_resumed": n_resumed, "steps_cache_unknown": n_unknown, "steps_over_quiet_load": busy, "steps_without_load": no_load,
                   "cores": n_cores},
            sentence=(f"`{command}`: its {len(t)} steps' recorded wall times sum to {total:.1f} min{on} (longest: "
                      f"{longest['step']}, {float(longest['minutes']):.1f} min{about}), {when}{tail}")))
    return out


def timing_block(timings: pd.DataFrame) -> str:
    total = timings["minutes"].sum()
    return ("\nTime of each step in its last recorded run (`results/<profile>/timings.csv`; the steps sum to "
            f"{total:.1f} min):\n\n" + markdown_table(timings) + "\n")


def update_readme(readme: str | Path, block: str) -> bool:
    """Put ``block`` between the README's markers; True when the file changed."""
    readme = Path(readme)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_BEGIN!r} and {README_END!r}.")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_BEGIN}\n{block}{README_END}{tail}"
    if new != text:
        readme.write_text(new)
        return True
    return False


# ---- tables of one evaluation run (notebook 3) ------------------------------------------------------------------

def systems_table(summaries: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("accuracy", "nmae", "wasserstein")
                  ) -> pd.DataFrame:
    """Model and baselines side by side: "estimate [lo, hi]" per system and metric (rows) and subset (columns)."""
    table = pd.concat(summaries, names=["system"]).reset_index(level=0)
    shown = table[table.metric.isin(list(metrics))]
    deg = shown["degenerate"] if "degenerate" in shown else [None] * len(shown)
    shown = shown.assign(value=[show(e, lo, hi, d) for e, lo, hi, d in zip(shown.estimate, shown.lo, shown.hi, deg)])
    return shown.pivot_table(index=["system", "metric"], columns="subset", values="value", aggfunc="first")


def long_summaries(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every system's summary in one long table (a ``system`` column)."""
    return pd.concat(summaries, names=["system"]).reset_index(level=0).reset_index(drop=True)


def beside_paper(summaries: dict[str, pd.DataFrame], run_name: str, study) -> pd.DataFrame:
    """Our run, the baselines and the paper's reported models: accuracy and NMAE on all pairs.

    The paper's rows are Singapore's: they are shown beside a run of the Singapore study only (``study``, the
    run's study's name: another country's run gets its own baselines, never another country's reported models)."""
    def get(name, metric, col="estimate"):
        row = summaries[name].set_index(["subset", "metric"]).loc[("all", metric)]
        return row[col] if col in row else float("nan")

    def row(name, label, kind):
        return {"model": label, "kind": kind, "acc": get(name, "accuracy"), "nmae": get(name, "nmae"),
                "acc_lo": get(name, "accuracy", "lo"), "acc_hi": get(name, "accuracy", "hi"),
                "nmae_lo": get(name, "nmae", "lo"), "nmae_hi": get(name, "nmae", "hi")}

    ours = [row("model", f"{run_name} (ours)", "ours")]
    ours += [row(k, f"{k} (baseline)", "baseline") for k in summaries if k != "model"]
    if getattr(study, "name", study) != "sgp":
        return pd.DataFrame(ours)
    reported = paper.OOD_RESULTS.rename(columns={"acc_base": "acc", "nmae_base": "nmae"})[["model", "kind", "acc", "nmae"]]
    reported = reported.assign(model=reported.model + " (reported)")
    return pd.concat([pd.DataFrame(ours), reported], ignore_index=True)
