"""Claims built from numbers: degenerate intervals, Wilson intervals, paired comparisons, ranks with intervals, the
token budget of generate mode, and the errors that name the missing file and the step that writes it."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from subgroup_values.analysis import findings, landscape
from subgroup_values.backends.base import GenerateRequest, Reply, reply_records
from subgroup_values.core import claims
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.evaluation.evaluate import budget_sweep, cut_curve, cut_summary
from subgroup_values.stats.bootstrap import bootstrap, is_degenerate, mean_bootstrap, show, subgroup_bootstrap
from subgroup_values.survey.dataset import data_claims, load_manifest


def test_a_statistic_whose_resamples_are_all_equal_is_uninformative_not_an_interval():
    df = pd.DataFrame({"qid": np.repeat([f"Q{i}" for i in range(20)], 5), "const": 1.0,
                       "varies": np.random.default_rng(0).random(100)})
    ci = mean_bootstrap(df, ["const", "varies"], n_boot=200)
    assert ci.loc["const", "degenerate"] and not ci.loc["varies", "degenerate"]
    assert show(*ci.loc["const", ["estimate", "lo", "hi", "degenerate"]]) == "1.000 (uninformative: all resamples equal)"
    assert show(*ci.loc["varies", ["estimate", "lo", "hi", "degenerate"]]).count("[") == 1
    assert bootstrap(df, lambda d: d.const.mean(), n_boot=50, method="percentile").degenerate.iloc[0]
    df["subgroup_id"] = np.tile(list("abcde"), 20)
    sb = subgroup_bootstrap(df, ["const"], lambda m, o: {"range": np.nanmax(m[..., 0], 1) - np.nanmin(m[..., 0], 1)},
                            n_boot=50)
    assert sb.degenerate.iloc[0]
    assert claims.fmt_ci(0.5, 0.5, 0.5) == "0.500 (uninformative: all resamples equal)"
    assert is_degenerate([np.nan, np.nan]) and not is_degenerate([0.1, 0.2])


def test_wilson_interval_known_values_and_bad_input():
    lo, hi = findings.wilson(0, 20)
    assert lo == 0 and hi == pytest.approx(3.8415 / (20 + 3.8415), abs=1e-4)
    lo, hi = findings.wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        findings.wilson(11, 10)
    # the refusal runs' sample: a Wilson half-width under 5 points up to a rate of about 10%
    n = yaml.safe_load((REPO_ROOT / "configs/default.yaml").read_text())["runs"]["base_ood_refusals"]["limit"]
    lo, hi = findings.wilson(round(0.10 * n), n)
    assert (hi - lo) / 2 < findings.REFUSAL_HALF_WIDTH
    lo, hi = findings.wilson(round(0.3 * n), n)
    assert (hi - lo) / 2 > findings.REFUSAL_HALF_WIDTH  # and the claim says so for a larger rate


def test_refusal_runs_sample_exactly_the_sensitive_items():
    from subgroup_values.survey.questions import SENSITIVE_ITEMS

    runs = yaml.safe_load((REPO_ROOT / "configs/default.yaml").read_text())["runs"]
    for name in ("base_ood_refusals", "sft_ood_refusals"):
        assert set(runs[name]["qids"]) == set(SENSITIVE_ITEMS), name
        assert runs[name]["max_new_tokens"] == runs["base_ood_generate"]["max_new_tokens"]


def test_paired_difference_is_the_mean_difference_and_decides_by_its_interval():
    rng = np.random.default_rng(1)
    qid = pd.Series(np.repeat([f"Q{i}" for i in range(40)], 10))
    a = pd.Series(rng.random(400) < 0.7).astype(float)
    b = pd.Series(rng.random(400) < 0.4).astype(float)
    d = findings.paired_difference(a, b, qid, n_boot=300)
    assert d["estimate"] == pytest.approx(a.mean() - b.mean()) and d["lo"] > 0
    same = findings.paired_difference(a, a, qid, n_boot=100)
    assert same["degenerate"] and same["estimate"] == 0


def _frame(n_q=30, subgroups=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        for s in range(subgroups):
            rows.append({"qid": f"Q{q}", "subgroup_id": f"s{s}", "divergent": s == 0})
    return pd.DataFrame(rows), rng


def test_evaluation_claims_compare_on_the_same_pairs_with_one_bonferroni_level():
    f, rng = _frame()
    model = f.assign(correct=(rng.random(len(f)) < 0.8).astype(float), tv=rng.random(len(f)) * 0.2)
    base = {k: f.assign(correct=(rng.random(len(f)) < p).astype(float), tv=rng.random(len(f)) * 0.2 + 0.3)
            for k, p in (("uniform", 0.2), ("population_mode", 0.8), ("compositional", 0.8))}
    out = findings.evaluation_claims("m", model, base, n_boot=200)
    assert len(out) == len(findings.BASELINE_COMPARISONS)
    levels = {c.extra["level"] for c in out}
    assert len(levels) == 1 and levels.pop() == pytest.approx(1 - 0.05 / len(out), rel=1e-9)  # (12 digits kept)
    by = claims.by_id(out)
    assert by["evaluation.m.vs_uniform.accuracy.all"].verdict == "above"
    assert by["evaluation.m.vs_uniform.tv.all"].verdict == "lower (better)"
    assert "paired" in by["evaluation.m.vs_uniform.accuracy.all"].sentence


def test_a_rank_is_stated_only_where_its_interval_is_that_rank():
    rows = []
    rng = np.random.default_rng(0)
    for cat, mean in (("A", 0.9), ("B", 0.5), ("C", 0.49), ("D", 0.1)):
        for q in range(15):
            for stratum in ("x", "y"):
                rows.append({"qid": f"{cat}{q}", "category": cat, "stratum": stratum,
                             "mds": float(np.clip(mean + rng.normal(0, 0.05), 0, 1)), "wasserstein": 0.1})
    pq = pd.DataFrame(rows)
    ranks = landscape.category_ranks(pq, n_boot=300)
    cats = landscape.by_category(pq, n_boot=300)
    out = claims.by_id(landscape.landscape_claims(ranks, cats, {"B": 0.5}))
    assert out["landscape.most_divided"].verdict == "rank 1" and "separated from the others" in \
        out["landscape.most_divided"].sentence
    assert out["landscape.least_divided"].verdict == "rank 4"
    mid = ranks.set_index("category")
    assert mid.loc["B", "rank_lo"] <= 2 <= mid.loc["B", "rank_hi"] and mid.loc["B", "rank_hi"] >= 3
    assert out["landscape.paper.b"].verdict == "consistent with the paper"
    # B and C cannot be told apart: were B first, it would not be called the most divided
    ranks2 = landscape.category_ranks(pq[pq.category.isin(["B", "C"])], n_boot=300)
    c2 = landscape.landscape_claims(ranks2, landscape.by_category(pq[pq.category.isin(["B", "C"])], n_boot=300), {})
    assert claims.by_id(c2)["landscape.most_divided"].verdict == "not separated"


def test_data_claims_say_reproduced_or_name_what_differs():
    m = load_manifest()
    assert claims.by_id(data_claims(m))["data.counts"].verdict == "reproduced"
    changed = json.loads(json.dumps(m))
    changed["counts"]["pairs"]["ood"] -= 1
    c = claims.by_id(data_claims(changed))["data.counts"]
    assert c.verdict == "differs" and "ood_pairs" in c.sentence


class _Tok:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


class _Fake:
    """Greedy decodings as token ids (one character each) and whether each ended within the budget."""

    kind = "fake"
    tokenizer = _Tok()

    def __init__(self, texts):
        self.texts = texts

    def generate_ids(self, requests):
        out = []
        for r, t in zip(requests, self.texts):
            ids = [ord(ch) for ch in t]
            out.append((ids, True) if len(ids) < r.max_new_tokens else (ids[:r.max_new_tokens], False))
        return out


def test_budget_sweep_reads_every_budget_from_one_decoding():
    from subgroup_values.survey.dataset import load_pairs

    pairs = load_pairs()
    pairs = pairs[pairs.split == "ood"].head(4)
    texts = ["Answer: 1", "The most likely answer is 2. Answer: 2", "x" * 100, "Answer: 3"]
    t = budget_sweep(_Fake(texts), pairs, [5, 9, 10, 40, 64]).set_index("max_new_tokens")
    # "Answer: 1" and "Answer: 3" are 9 characters: cut at 5 and 9 (no room for the end), whole at 10
    assert t.loc[5, "share_cut"] == 1.0
    assert t.loc[9, "share_cut"] == 1.0 and t.loc[10, "share_cut"] == 0.5
    assert t.loc[40, "share_cut"] == 0.25 and t.loc[64, "share_cut"] == 0.25
    assert t.loc[5, "share_unparseable"] > t.loc[40, "share_unparseable"]
    with pytest.raises(ValueError, match="token ids"):
        budget_sweep(object.__new__(type("B", (), {"kind": "x"})), pairs, [8])


def test_replies_record_the_cut_and_a_run_its_curve():
    recs = reply_records([Reply("Answer: 1", cut=False, tokens=4), Reply("The most", cut=True, tokens=8), "plain"])
    assert recs[0] == {"reply": "Answer: 1", "cut": False, "tokens": 4} and recs[2] == {"reply": "plain"}
    preds = pd.DataFrame({"cut": pd.array([False, True, False, None], dtype="boolean"),
                          "tokens": pd.array([4, 8, 7, None], dtype="Int64")})
    s = cut_summary(preds, 8)
    assert s["known"] == 3 and s["cut"] == 1 and s["share_cut"] == pytest.approx(1 / 3)
    curve = cut_curve(preds, 8).set_index("max_new_tokens").share_cut
    assert list(curve.index) == [8] and curve[8] == pytest.approx(1 / 3)
    assert cut_curve(preds.assign(tokens=pd.array([4, 8, 7, 1], dtype="Int64")), 8) is not None


def test_the_hf_backend_says_when_the_budget_cut_a_reply(tiny_model):
    from subgroup_values.backends import make_backend

    llm = make_backend("hf", str(tiny_model), batch_size=2)
    msgs = [{"role": "user", "content": "Say something."}]
    short, long_ = llm.generate([GenerateRequest(msgs, 1), GenerateRequest(msgs, 3)])
    ids = llm.generate_ids([GenerateRequest(msgs, 3)])[0][0]
    assert long_.tokens == len(ids) <= 3
    assert short.cut == (short.tokens == 1) and long_.cut == (long_.tokens == 3)


def test_missing_claims_name_the_file_and_the_step(tmp_path):
    with pytest.raises(FileNotFoundError, match="make fairness"):
        claims.read_claims(claims.claims_path(tmp_path, "fairness"))
    c = claims.Claim(id="data.counts", topic="data", statistic="s", sentence="S.")
    claims.write_claims([c], claims.claims_path(tmp_path, "data"))
    have = claims.read_profile_claims(tmp_path)
    assert claims.select(have, ["data.counts"]) == [c]
    with pytest.raises(KeyError, match=r"headroom\.json.*make headroom"):
        claims.select(have, ["data.counts", "headroom.floor"], tmp_path)
    claims.write_claims([c], claims.claims_path(tmp_path, "other"))
    with pytest.raises(ValueError, match="two files"):
        claims.read_profile_claims(tmp_path)


def test_the_budget_claim_names_the_smallest_budget_under_the_target_or_says_there_is_none_or_that_it_cannot_tell():
    t = pd.DataFrame({"max_new_tokens": [12, 32, 64], "replies": 40, "share_cut": [0.9, 0.2, 0.025],
                      "share_unparseable": [0.8, 0.4, 0.3], "share_refusal": 0.0, "accuracy": 0.1})
    c = findings.budget_claim(t, {"run": "r"})
    assert c.verdict == "a budget lets replies finish" and "the smallest budget under 5% is 64" in c.sentence
    # 10% of 40 at 32 and 64: the Wilson interval at 64 holds 5%, so the sweep cannot say none reaches it
    c = findings.budget_claim(t.assign(share_cut=[0.9, 0.1, 0.1]), {"run": "r"})
    assert c.verdict == "not resolved by the sweep" and "from 32 to 64" in c.sentence and c.lo < 0.05
    # 30% of 400: the interval lies above 5%: no budget measured lets replies finish
    c = findings.budget_claim(t.assign(share_cut=[0.9, 0.3, 0.3], replies=400), {"run": "r"})
    assert c.verdict == "no budget measured lets replies finish" and c.lo > 0.05


def test_a_second_model_is_placed_beside_the_embedded_one_on_its_pairs(tmp_path):
    """models.*: the other model's run on a sample of the reference's pairs, paired over questions; a pair the
    reference lacks is an error, not a silent drop."""
    import json
    import shutil

    from subgroup_values.core.paths import REPO_ROOT

    ref = REPO_ROOT / "results" / "default"
    other = tmp_path / "gemma"
    (other / "base_ood").mkdir(parents=True)
    preds = pd.read_parquet(ref / "base_ood" / "predictions.parquet").sample(300, random_state=0)
    worse = preds.assign(correct=0.0, tv=preds.tv + 0.1)  # a model that is wrong everywhere
    worse.to_parquet(other / "base_ood" / "predictions.parquet")
    shutil.copy(ref / "base_ood" / "metrics.json", other / "base_ood" / "metrics.json")
    found = {c.id: c for c in findings.model_claims(ref, other, "Ref", "Other", n_boot=200)}
    acc, tv = found["models.gemma.base_ood.vs_default.accuracy"], found["models.gemma.base_ood.vs_default.tv"]
    assert acc.verdict == "lower" and acc.estimate == pytest.approx(-preds.correct.mean())
    assert tv.verdict == "higher (worse)" and tv.estimate == pytest.approx(0.1)
    assert "on the same 300 pairs" in acc.sentence and json.dumps(acc.to_dict() if hasattr(acc, "to_dict") else {})
    stray = worse.assign(subgroup_id="nobody")
    stray.to_parquet(other / "base_ood" / "predictions.parquet")
    with pytest.raises(ValueError, match="lacks 300 of the pairs"):
        findings.model_claims(ref, other, "Ref", "Other", n_boot=50)
