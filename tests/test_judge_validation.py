"""The judge's validation set, its scores and the bar, the calibrated and length-controlled win rates, the stance
read-back and the open-ended claims: on the real pairs, scripted backends that know the answer, the fake server and
the tiny model."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from fake_openai import FakeOpenAI
from subgroup_values.backends import make_backend
from subgroup_values.backends.base import Backend, OptionScores
from subgroup_values.backends.cache import ResponseCache
from subgroup_values.evaluation import judge_validation as jv
from subgroup_values.evaluation import openended, readback
from subgroup_values.survey.dataset import load_pairs, sample_pairs

RESPONSE = re.compile(r"Response A: (.*?)\n\nResponse B: (.*?)\n\n", re.S)


@pytest.fixture(scope="module")
def items(questions):
    return jv.validation_set(load_pairs(split="train"), questions, 12, seed=0)


class KnowingJudge(Backend):
    """Scores verdicts with log-odds ``bias + skill * (+1 if the better answer is in slot A else -1)``: a judge with
    a slot prior ``bias`` that knows the better answer (the texts it is told are better)."""

    kind = "knowing"
    supports_logprob = True

    def __init__(self, better: set[str], bias: float, skill: float):
        self.better, self.bias, self.skill = better, bias, skill

    def identity(self):
        return {"backend": self.kind, "bias": self.bias, "skill": self.skill}

    def score(self, requests):
        out = []
        for r in requests:
            a, _ = RESPONSE.search(r.messages[-1]["content"]).groups()
            lo = self.bias + self.skill * (1 if a in self.better else -1)
            p = np.array([np.exp(lo / 2), np.exp(-lo / 2), 1e-3])
            out.append(OptionScores(probs=(p / p.sum()).tolist(), option_mass=1.0))
        return out


class StatedReader(Backend):
    """Reads back the option whose label the text quotes (a perfect reader of the templated statements)."""

    kind = "stated"
    supports_logprob = True

    def __init__(self, questions):
        self.questions = questions

    def identity(self):
        return {"backend": self.kind}

    def score(self, requests):
        out = []
        for r in requests:
            qid = r.group.split(":", 1)[1]
            said = r.messages[-1]["content"].split("said:", 1)[1]
            labels = [lab for _, lab in self.questions[qid].options]
            quoted = re.search(r'"([^"]*)"', said.split('"', 1)[1])  # the first quoted phrase of what was said
            hit = [quoted is not None and quoted.group(1) == lab for lab in labels]
            p = np.where(hit, 10.0, 1.0) if any(hit) else np.ones(len(labels))
            out.append(OptionScores(probs=(p / p.sum()).tolist(), option_mass=1.0))
        return out


def test_the_validation_set_states_the_mode_against_the_farthest_option(items, questions):
    assert set(items.kind) == set(jv.KINDS) and len(items) == 12 * 3
    for r in items.itertuples():
        q = questions[r.qid]
        shares = np.asarray(r.weighted_counts, float)
        values = [v for v, _ in q.options]
        m = values.index(r.better_option)
        assert shares[m] == shares.max()
        far = values.index(r.worse_option)
        assert abs(far - m) == max(m, len(values) - 1 - m) and far in (0, len(values) - 1)
        assert q.options[far][1] in r.worse and q.options[m][1] in r.better
        if r.kind == "balanced":  # the same template: lengths differ by the labels only
            assert r.better_chars - r.worse_chars == len(q.options[m][1]) - len(q.options[far][1]) or \
                q.options[m][1].isdigit()
        assert (r.kind == "better_longer") == (jv.ELABORATION in r.better)
        assert (r.kind == "better_shorter") == (jv.ELABORATION in r.worse)
    # the set is seeded and built from training pairs only
    again = jv.validation_set(load_pairs(split="train"), questions, 12, seed=0)
    assert again.drop(columns="weighted_counts").equals(items.drop(columns="weighted_counts"))
    ood = set(zip(*[load_pairs(split="ood")[c] for c in ("qid", "subgroup_id")]))
    assert not set(zip(items.qid, items.subgroup_id)) & ood


def test_a_slot_biased_judge_fails_the_bar_raw_and_passes_once_calibrated(items, questions):
    judge = KnowingJudge(set(items.better), bias=3.0, skill=1.0)  # always prefers slot A, but knows the answer
    v = jv.judge_validation(judge, items, questions)
    assert len(v) == 2 * len(items)
    s = jv.judge_scores(v, n_boot=100).set_index(["variant", "score"])
    assert s.loc[("raw", "slot-A rate"), "estimate"] == 1.0 and s.loc[("raw", "swap-flip rate"), "estimate"] == 1.0
    assert s.loc[("raw", "accuracy"), "estimate"] == 0.5
    ok, why = jv.passes(s.reset_index(), "raw")
    assert not ok and "flip" in why and "accuracy" in why
    scores = s.reset_index()
    assert scores.attrs == {} or True
    full = jv.judge_scores(v, n_boot=100)
    assert full.attrs["slot_prior"] == pytest.approx(3.0, abs=1e-3)
    ok, why = jv.passes(full, "calibrated")
    assert ok, why
    cal = full[full.variant == "calibrated"].set_index("score")
    assert cal.loc["accuracy", "estimate"] == 1.0 and cal.loc["swap-flip rate", "estimate"] == 0.0
    assert cal.loc["prefers longer", "estimate"] == pytest.approx(0.5)


def test_a_judge_that_prefers_the_longer_answer_shows_it(items, questions):
    class Longer(KnowingJudge):
        def score(self, requests):
            out = []
            for r in requests:
                a, b = RESPONSE.search(r.messages[-1]["content"]).groups()
                lo = 2.0 * np.sign(len(a) - len(b)) + 0.3 * (1 if a in self.better else -1)
                p = np.array([np.exp(lo / 2), np.exp(-lo / 2), 1e-3])
                out.append(OptionScores(probs=(p / p.sum()).tolist(), option_mass=1.0))
            return out

    s = jv.judge_scores(jv.judge_validation(Longer(set(items.better), 0, 0), items, questions), n_boot=100)
    raw = s[s.variant == "raw"].set_index("score")
    assert raw.loc["prefers longer", "estimate"] == 1.0


def _judgements(evidence: list[float], dlen: list[int], prior: float) -> pd.DataFrame:
    """Judgements whose calibrated evidence for the system is ``evidence`` (per pair), with a slot prior."""
    rows = []
    for i, (e, d) in enumerate(zip(evidence, dlen)):
        for order, lo in (("system_first", prior + e), ("system_second", prior - e)):
            pa = 1 / (1 + np.exp(-lo))
            rows.append({"qid": f"Q{i}", "subgroup_id": "s", "criterion": "Value", "order": order,
                         "verdict": "A" if lo > 0 else "B", "score": float((lo > 0) == (order == "system_first")),
                         "p_A": pa * 0.99, "p_B": (1 - pa) * 0.99, "p_tie": 0.01,
                         "system_chars": 100 + d, "reference_chars": 100})
    return pd.DataFrame(rows)


def test_calibrated_and_length_controlled_win_rates():
    # the system is longer on 30 pairs (wins 20) and shorter on 12 (wins 4): a pure length effect
    evidence = [1.0] * 20 + [-1.0] * 10 + [1.0] * 4 + [-1.0] * 8
    dlen = [50] * 30 + [-50] * 12
    j = _judgements(evidence, dlen, prior=2.5)
    raw = openended.win_rates(j, n_boot=50).iloc[0]
    assert raw.status.startswith("judge uninformative") and np.isnan(raw.win_rate)  # slot A always: agreement 0
    c = openended.calibrated_win_rates(j, prior=2.5, n_boot=200).iloc[0]
    assert c.calibrated == pytest.approx(24 / 42)
    assert abs(c.length_controlled - 0.5) < 0.02 and c.length_coef > 0.5
    assert c.calibrated_lo < c.calibrated < c.calibrated_hi
    # without the prior the per-order verdicts are all slot A; with it, the items' evidence decides
    assert openended.calibrated_win_rates(j, prior=0.0, n_boot=20).iloc[0].calibrated == pytest.approx(24 / 42)


@pytest.mark.parametrize("verdict", ["A", "B", "tie"])
def test_a_degenerate_win_rate_has_no_interval(verdict):
    from test_openended import ScriptedJudge

    pairs = sample_pairs(load_pairs(split="ood"), 6, seed=0)
    from subgroup_values.survey.questions import load_questions

    qs = {q.qid: q for q in load_questions(rule="all")}
    j = openended.judge(ScriptedJudge(verdict), pairs, qs, ["s"] * 6, ["r"] * 6, criteria=["Overall"],
                        mode="generate")
    r = openended.win_rates(j, n_boot=20).iloc[0]
    assert np.isnan(r.win_rate) and np.isnan(r.lo) and r.raw_mean == 0.5
    text = openended.win_rate_text(r)
    assert "uninformative" in text and "0.500" not in text
    if verdict != "tie":
        assert text == "judge uninformative (order agreement 0%)"


def test_the_reader_is_validated_on_the_statements_and_compared_with_the_survey(items, questions, tmp_path):
    reader = StatedReader(questions)
    st = jv.reader_statements(items)
    cache = ResponseCache(tmp_path / "c.sqlite")
    probs = readback.read_back(reader, st.qid.tolist(), st.text.tolist(), questions, cache)
    acc = readback.reader_accuracy(st, probs, questions, n_boot=50)
    assert acc["accuracy"] == 1.0 and acc["statements"] == len(st) and acc["chance"] < 0.5
    # a reader that reads everything as the first option is right only on statements of the first option
    first = [[1.0] + [0.0] * (questions[q].n_options - 1) for q in st.qid]
    low = readback.reader_accuracy(st, first, questions, n_boot=50)["accuracy"]
    assert low == pytest.approx(np.mean([s == questions[q].options[0][0] for q, s in zip(st.qid, st.stated)]))
    # a system that states each group's modal option is read back closer than one that states the farthest
    pairs = items[items.kind == "balanced"].reset_index(drop=True)
    good = readback.compare(pairs, readback.read_back(reader, pairs.qid.tolist(), pairs.better.tolist(), questions,
                                                      cache))
    bad = readback.compare(pairs, readback.read_back(reader, pairs.qid.tolist(), pairs.worse.tolist(), questions,
                                                     cache))
    assert (good.tv < bad.tv).all() and (good.log_score > bad.log_score).all()
    assert (good.floor_log_score >= good.log_score - 1e-12).all()
    ch = readback.paired_change(bad, {"modal": good}, n_boot=200, n_perm=2000).set_index("statistic")
    assert ch.loc["tv", "difference"] < 0 and ch.loc["tv", "verdict"] == "closer"
    assert ch.loc["log_score", "verdict"] == "closer" and ch.loc["tv", "p_holm"] < 0.05
    same = readback.paired_change(bad, {"same": bad}, n_boot=50, n_perm=200)
    assert (same.verdict == "no clear difference").all()


def test_the_reader_uses_the_evaluations_option_scoring_through_the_fake_server(items, questions):
    st = jv.reader_statements(items).head(3)
    with FakeOpenAI(answer="Answer: 3") as srv:
        reader = make_backend("openai_compat", model="reader", base_url=srv.url, backoff=0.01)
        probs = readback.read_back(reader, st.qid.tolist(), st.text.tolist(), questions)
        body = srv.requests[0]
    assert body["logprobs"] is True and "Someone was asked this question and said" in body["messages"][-1]["content"]
    assert "Options:" in body["messages"][-1]["content"]  # the evaluation's question block, with its options
    assert all(p is not None and abs(sum(p) - 1) < 1e-9 for p in probs)


def test_the_judge_runs_through_the_fake_servers_completions_endpoint(items, questions, tiny_model):
    """The completions path scores A / B / tie exactly after "Verdict:" (the fake server computes with the tiny
    model): the verdict probabilities agree with the local scorer's."""
    few = items.head(2)
    local = jv.judge_validation(make_backend("hf", str(tiny_model), dtype="float32"), few, questions)
    with FakeOpenAI(model_path=tiny_model) as srv:
        remote_be = make_backend("openai_compat", model="judge", base_url=srv.url, backoff=0.01,
                                 endpoint="completions", tokenizer=str(tiny_model))
        remote = jv.judge_validation(remote_be, few, questions)
    assert remote.verdict.tolist() == local.verdict.tolist()
    assert np.allclose(remote[["p_A", "p_B", "p_tie"]], local[["p_A", "p_B", "p_tie"]], atol=1e-4)


def test_tiny_model_validation_readback_and_claims_end_to_end(items, questions, tiny_model, tmp_path):
    from subgroup_values.core.claims import read_claims, write_claims

    be = make_backend("hf", str(tiny_model), batch_size=4)
    cache = ResponseCache(tmp_path / "c.sqlite")
    few = items.head(6)
    timings = {}
    v = jv.judge_validation(be, few, questions, cache=cache, timings=timings)
    scores = jv.judge_scores(v, n_boot=50)
    pairs = sample_pairs(load_pairs(split="ood"), 4, seed=0)
    answers = openended.generate_answers(be, pairs, questions, cache, max_new_tokens=6, timings=timings,
                                         timing_name="answers base")
    j = openended.judge(be, pairs, questions, answers, answers[::-1], criteria=["Overall", "Value"], cache=cache,
                        timings=timings)
    rates = openended.win_rates(j, n_boot=50)
    cal = openended.calibrated_win_rates(j, scores.attrs["slot_prior"], n_boot=50)
    st = jv.reader_statements(few)
    reader = readback.reader_accuracy(st, readback.read_back(be, st.qid.tolist(), st.text.tolist(), questions, cache),
                                      questions, n_boot=50)
    per = {name: readback.compare(pairs, readback.read_back(be, pairs.qid.tolist(), a, questions, cache,
                                                            timings=timings, timing_name=f"read-back {name}"))
           for name, a in (("base", answers), ("tuned", answers[::-1]))}
    summary = readback.summary(per, n_boot=50)
    changes = readback.paired_change(per["base"], {"tuned": per["tuned"]}, n_boot=50, n_perm=200)
    n = len(cache)
    jv.judge_validation(be, few, questions, cache=cache)
    assert len(cache) == n  # every verdict and read-back is cached
    scale = openended.scale_estimate({"win rate": (0.2, 4)}, timings,
                                     {"judgements": 4, "read-back base": 1})
    assert scale["needed"]["win rate"]["pairs_needed"] == 64 and scale["seconds_per_pair"] > 0
    claims = openended.open_ended_claims("tiny", scores, rates, cal, "tiny", reader, summary, changes, scale)
    path = write_claims(claims, tmp_path / "open_ended.json")
    back = read_claims(path)
    ids = [c.id for c in back]
    assert ids[0] == "open_ended.judge.tiny.raw" and ids[1] == "open_ended.judge.tiny.calibrated"
    assert {"open_ended.win_rate.overall", "open_ended.win_rate.value", "open_ended.reader.validation",
            "open_ended.readback.base", "open_ended.readback_change.tuned.tv", "open_ended.scale"} <= set(ids)
    assert all(c.topic == "open_ended" for c in back)
    text = json.dumps([c.sentence for c in back])
    assert "0.500 [0.500, 0.500]" not in text
    for c in back:
        if c.id.startswith("open_ended.readback"):
            assert "reads back the stated option" in c.sentence  # the reader's accuracy beside every result
    # the random tiny judge cannot pass the bar: its win rates are not shown
    wr = [c for c in back if c.id.startswith("open_ended.win_rate.")]
    if not jv.passes(scores, "calibrated")[0]:
        assert all(c.verdict == "uninformative" and c.estimate is None for c in wr)


def test_pairs_needed_and_holm():
    assert readback.pairs_needed(0.1, 40) == 160 and readback.pairs_needed(0.05, 40) == 40
    with pytest.raises(ValueError, match="half-width"):
        readback.pairs_needed(float("nan"), 40)
    assert readback.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_the_paper_comparison_takes_the_open_ended_rows_from_the_claims(tmp_path):
    from subgroup_values.core.claims import Claim, write_claims
    from subgroup_values.reporting.report import paper_comparison
    from subgroup_values.survey.dataset import load_manifest

    res = tmp_path / "results"
    (res / "open_ended").mkdir(parents=True)
    # a stale degenerate table is not what the row shows
    pd.DataFrame([{"criterion": "Overall", "win_rate": 0.5, "lo": 0.5, "hi": 0.5}]).to_csv(
        res / "open_ended" / "win_rates.csv", index=False)
    write_claims([Claim(id="open_ended.judge.j.raw", topic="open_ended", statistic="s", verdict="uninformative",
                        sentence="Judge j failed."),
                  Claim(id="open_ended.win_rate.overall", topic="open_ended", statistic="s", verdict="uninformative",
                        sentence="Overall: no win rate; the judge is uninformative (slot A always).")],
                 res / "claims" / "open_ended.json")
    t = paper_comparison(res, load_manifest(), "default", "m")
    oe = t[t.section == "open-ended"]
    assert oe["ours"].tolist() == ["Overall: no win rate; the judge is uninformative (slot A always)."]
    assert "uninformative" in oe["what differs"].iloc[0]
    assert not t["ours"].astype(str).str.contains(r"0\.500 \[0\.500, 0\.500\]").any()
