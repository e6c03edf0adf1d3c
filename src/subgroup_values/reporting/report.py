"""Tables of the study: the paper beside ours, run times and what README and the rendered study quote from the results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core import claims, paper
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
