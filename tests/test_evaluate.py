"""Predictions, per-pair scores, baselines, summaries, and a cache that survives a kill."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kill_helper import kill_after_cached

from subgroup_values.backends.cache import ResponseCache
from subgroup_values.backends.hf import HFBackend
from subgroup_values.evaluation import baselines, evaluate
from subgroup_values.stats import metrics
from subgroup_values.survey import dataset
from subgroup_values.survey.dataset import load_pairs
from subgroup_values.survey.prompts import UNANSWERED


@pytest.fixture(scope="module")
def all_pairs():
    return load_pairs()


def test_sample_is_seeded_and_order_free(all_pairs):
    ood = all_pairs[all_pairs.split == "ood"]
    a = dataset.sample_pairs(ood, 50, seed=3)
    b = dataset.sample_pairs(ood.sample(frac=1, random_state=1), 50, seed=3)
    assert len(a) == 50 and set(zip(a.qid, a.subgroup_id)) == set(zip(b.qid, b.subgroup_id))
    c = dataset.sample_pairs(ood, 50, seed=4)
    assert set(zip(a.qid, a.subgroup_id)) != set(zip(c.qid, c.subgroup_id))
    assert len(dataset.sample_pairs(ood, 0)) == len(ood)


def test_baselines_on_the_real_ood_split(all_pairs):
    ood = all_pairs[all_pairs.split == "ood"]
    pop = baselines.predictions(ood, all_pairs, "population_mode")
    assert pop[~pop.divergent].correct.eq(1).all() and pop[pop.divergent].correct.eq(0).all()
    assert 0.80 < pop.correct.mean() < 0.85  # about 17-18% of OOD pairs diverge from the population's mode
    comp = baselines.predictions(ood, all_pairs, "compositional")
    assert comp.correct.mean() > pop.correct.mean()
    uni = baselines.predictions(ood, all_pairs, "uniform")
    k = uni.scale_max - uni.scale_min + 1
    expected = uni.modal_answers.map(len) / k
    assert np.allclose(uni.correct, expected)
    with pytest.raises(ValueError, match="baseline must be one of"):
        baselines.predictions(ood, all_pairs, "oracle")
    # point masses: the true mode is right by definition; the population's mode as a point mass answers as the
    # population-mode baseline but is a worse distribution
    true = baselines.predictions(ood, all_pairs, "true_mode")
    assert true.correct.eq(1).all()
    point = baselines.predictions(ood, all_pairs, "population_mode_point")
    assert (point.correct.to_numpy() == pop.correct.to_numpy()).all()
    assert point.tv.mean() > pop.tv.mean() and point.js.mean() > pop.js.mean()
    # the log-linear composition beats the mean of the marginals as a distribution, on divergent pairs too
    loglin = baselines.predictions(ood, all_pairs, "log_linear")
    for d in (slice(None), loglin.divergent.to_numpy()):
        assert loglin.tv.to_numpy()[d].mean() < comp.tv.to_numpy()[d].mean()
        assert loglin.wasserstein.to_numpy()[d].mean() < comp.wasserstein.to_numpy()[d].mean()


def test_log_linear_by_hand():
    # two marginals that both favour option 1 against a flat population: their product is sharper than either
    m1, m2, pop = np.array([6.0, 2.0]), np.array([6.0, 2.0]), np.array([4.0, 4.0])
    p = baselines.log_linear([m1, m2], pop, pseudocount=0.0)
    assert p == pytest.approx(np.array([9, 1]) / 10)  # (.75 * .75) / .5 : (.25 * .25) / .5 = 9 : 1
    # one attribute: its own (smoothed) distribution; an option nobody chose keeps the pseudo-count's weight
    assert baselines.log_linear([np.array([3.0, 0.0])], pop) == pytest.approx(np.array([3.5, 0.5]) / 4)
    with pytest.raises(ValueError, match="at least one"):
        baselines.log_linear([], pop)


def test_scores_and_summary_by_hand():
    preds = pd.DataFrame({
        "qid": ["Q1", "Q1", "Q2", "Q2"], "modal_answers": [[1], [2, 3], [10], [1]],
        "scale_min": [1, 1, 1, 1], "scale_max": [4, 4, 10, 10], "weighted_counts": [[3, 1, 0, 0], [0, 1, 1, 0],
                                                                                     [0] * 9 + [5], [5] + [0] * 9],
        "choice": pd.array([1, 4, None, 10], dtype="Int64"), "probs": [None] * 4,
        "status": ["ok", "ok", "refusal", "ok"], "divergent": [False, True, False, True]})
    s = metrics.score_pairs(preds)
    assert s.correct.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert s.nmae.tolist() == pytest.approx([0.0, 1 / 3, 1.0, 1.0])
    summ = evaluate.summarise(s, n_boot=20).set_index(["subset", "metric"]).estimate
    assert summ[("all", "accuracy")] == 0.25 and summ[("all", "refusal_rate")] == 0.25
    assert summ[("divergent", "accuracy")] == 0.0 and summ[("consensus", "accuracy")] == 0.5


def test_predict_with_cache_and_sensitivity(tiny_model, all_pairs, tmp_path):
    pairs = dataset.sample_pairs(all_pairs[all_pairs.split == "ood"], 24, seed=0)
    be = HFBackend(tiny_model, dtype="float32", batch_size=8)
    cache = ResponseCache(tmp_path / "c.sqlite")
    first = evaluate.predict(be, pairs, cache=cache, progress=False)
    again = evaluate.predict(be, pairs, cache=cache, progress=False)
    assert first.attrs["pairs_computed"] == 24 and again.attrs["pairs_computed"] == 0
    assert first.probs.tolist() == again.probs.tolist()
    gen = evaluate.predict(be, pairs, scoring="generate", cache=cache, max_new_tokens=4, progress=False)
    assert set(gen.status) <= {"ok", *UNANSWERED}
    empty = int((gen.status == "empty").sum())  # empty replies are recorded, not cached (retried next run)
    assert gen.attrs["pairs_computed"] == 24 - empty and len(cache) == 48 - empty  # generate has its own keys
    sens = evaluate.persona_sensitivity(first)
    assert sens.model_change.between(0, 1).all() and sens.true_change.between(0, 1).all()
    with pytest.raises(ValueError, match="scoring must be"):
        evaluate.predict(be, pairs, scoring="vibes")


def test_interrupted_run_resumes_where_it_stopped(tiny_model, tmp_path, all_pairs):
    """Kill a run part-way (SIGKILL), rerun it: finished chunks are reused and the result equals a clean run."""
    cache_path = tmp_path / "c.sqlite"
    script = textwrap.dedent(f"""
        import time
        from subgroup_values.survey import dataset
        from subgroup_values.evaluation import evaluate
        from subgroup_values.backends.cache import ResponseCache
        from subgroup_values.backends.hf import HFBackend
        from subgroup_values.survey.dataset import load_pairs
        pairs = dataset.sample_pairs(load_pairs(split="ood"), 400, seed=1)
        be = HFBackend({str(tiny_model)!r}, dtype="float32", batch_size=8)
        orig = be.score
        def slow(reqs):
            time.sleep(0.3)
            return orig(reqs)
        be.score = slow
        evaluate.predict(be, pairs, cache=ResponseCache({str(cache_path)!r}), chunk_size=16, progress=False)
    """)
    kept = kill_after_cached(script, cache_path, 48)
    assert 48 <= kept < 400
    pairs = dataset.sample_pairs(all_pairs[all_pairs.split == "ood"], 400, seed=1)
    be = HFBackend(tiny_model, dtype="float32", batch_size=8)
    resumed = evaluate.predict(be, pairs, cache=ResponseCache(cache_path), chunk_size=16, progress=False)
    assert resumed.attrs["pairs_computed"] == 400 - kept
    clean = evaluate.predict(be, pairs, cache=ResponseCache(tmp_path / "clean.sqlite"), progress=False)
    assert np.allclose(np.vstack(resumed.probs.map(lambda p: np.pad(p, (0, 10 - len(p))))),
                       np.vstack(clean.probs.map(lambda p: np.pad(p, (0, 10 - len(p))))), atol=1e-5)


def test_predict_with_the_marginals_template(tiny_model, all_pairs):
    ood = all_pairs[all_pairs.split == "ood"].head(12)
    be = HFBackend(tiny_model, dtype="float32", batch_size=8)
    preds = evaluate.predict(be, ood, template="marginals", all_pairs=all_pairs, progress=False)
    assert len(preds) == 12 and preds.status.eq("ok").all()
    assert np.allclose([sum(p) for p in preds.probs], 1.0)
    plain = evaluate.predict(be, ood, template="persona_user", progress=False)
    assert not np.allclose(np.concatenate(preds.probs.tolist()), np.concatenate(plain.probs.tolist()))


def test_a_saved_run_names_the_checkouts_files_relative_to_it(tiny_model, all_pairs, tmp_path):
    """A committed record must not carry the folder of the machine that made it: the pairs table (in the
    record's config and data, and in the predictions' parquet attributes) is written relative to the checkout."""
    import json

    from subgroup_values.core.paths import REPO_ROOT
    from subgroup_values.core.provenance import portable
    from subgroup_values.evaluation import runs

    out = runs.evaluate_run({"model": str(tiny_model), "pairs": str(REPO_ROOT / "data/processed/pairs.csv"),
                             "split": "ood", "limit": 6, "n_boot": 20, "cache": "", "quiet": True}, tmp_path / "run")
    text = (tmp_path / "run" / "metrics.json").read_text()
    assert str(REPO_ROOT) not in text
    rec = json.loads(text)
    assert rec["config"]["pairs"] == "data/processed/pairs.csv" and rec["data"]["pairs_file"] == "data/processed/pairs.csv"
    saved = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert str(REPO_ROOT) not in json.dumps(saved.attrs, default=str) and out["preds"].attrs  # the frame in memory keeps its own
    # the survey file a user points at, outside the checkout, is kept as given; the root itself reads "."
    assert portable({"a": ["/elsewhere/wvs.csv", str(REPO_ROOT)]}) == {"a": ["/elsewhere/wvs.csv", "."]}
    # and the re-scoring finds the table again from the relative record
    again = runs.rescore_run(tmp_path / "run", n_boot=20)
    assert json.loads(Path(again["metrics"]).read_text())["data"]["pairs_file"] == "data/processed/pairs.csv"
