"""Open-ended answers and the pairwise judge: swap logic, ties, parsing, on the tiny model and the fake server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fake_openai import FakeOpenAI
from subgroup_values.backends import make_backend
from subgroup_values.backends.base import Backend
from subgroup_values.backends.cache import ResponseCache
from subgroup_values.evaluation import openended
from subgroup_values.survey.dataset import load_pairs, sample_pairs


class ScriptedJudge(Backend):
    """Always answers the same slot (or tie): the swap must turn that into an even win rate."""

    kind = "scripted"

    def __init__(self, verdict: str):
        self.verdict = verdict
        self.calls = 0

    def identity(self):
        return {"backend": "scripted", "verdict": self.verdict}

    def generate(self, requests):
        self.calls += len(requests)
        return [f"Verdict: {self.verdict}" for _ in requests]


@pytest.fixture(scope="module")
def few_pairs():
    return sample_pairs(load_pairs(split="ood"), 4, seed=0)


@pytest.mark.parametrize("verdict,win", [("A", 0.5), ("B", 0.5), ("tie", 0.5)])
def test_swap_cancels_a_position_biased_judge(few_pairs, questions, verdict, win):
    j = openended.judge(ScriptedJudge(verdict), few_pairs, questions, ["sys"] * 4, ["ref"] * 4,
                        criteria=["Overall", "Value"], mode="generate")
    assert len(j) == 4 * 2 * 2
    assert set(j.order) == {"system_first", "system_second"}
    rates = openended.win_rates(j, n_boot=20)
    assert (rates.raw_mean == win).all()
    # a fixed judge is degenerate: no win rate and no interval, never 0.500 [0.500, 0.500]
    assert rates.win_rate.isna().all() and rates.lo.isna().all() and rates.status.str.contains("uninformative").all()
    if verdict == "A":
        assert (rates.prefers_slot_A == 1.0).all() and (rates.order_agreement == 0.0).all()
    if verdict == "tie":
        assert (rates.ties == 1.0).all()


def test_scores_follow_the_slot():
    j = pd.DataFrame({"qid": ["Q1"] * 4, "subgroup_id": ["s"] * 4, "criterion": ["Overall"] * 4,
                      "order": ["system_first", "system_second", "system_first", "system_second"],
                      "verdict": ["A", "A", None, "tie"], "score": [1.0, 0.0, np.nan, 0.5]})
    r = openended.win_rates(j, n_boot=10).iloc[0]
    assert r.raw_mean == pytest.approx(0.5) and r.unreadable == 1
    assert r.status == "judge uninformative (order agreement 0%)" and np.isnan(r.win_rate)


@pytest.mark.parametrize("reply,verdict", [("Verdict: A", "A"), ("verdict: b", "B"), ("Verdict: Tie.", "tie"),
                                           ("**Verdict: B**", "B"), ("A", "A"), ("Response B", "B"),
                                           ("I think both are fine", None), ("", None)])
def test_parse_verdict(reply, verdict):
    assert openended.parse_verdict(reply) == verdict


def test_value_rubric_shows_the_real_distribution(questions):
    q = questions["Q57"]
    msgs = openended.judge_messages(q, {"sex": "Female"}, "Value", "x", "y", [30.0, 70.0])
    assert "Most people can be trusted: 30%" in msgs[-1]["content"]
    assert "Most people" not in openended.judge_messages(q, {"sex": "Female"}, "Overall", "x", "y", [30, 70])[-1]["content"]
    with pytest.raises(ValueError, match="criterion"):
        openended.judge_messages(q, {}, "Style", "x", "y")


def test_unreadable_judge_is_retried_then_counted(few_pairs, questions):
    with FakeOpenAI(answer="Both answers have merits.") as srv:
        judge = make_backend("openai_compat", model="judge", base_url=srv.url, backoff=0.01)
        j = openended.judge(judge, few_pairs.head(1), questions, ["s"], ["r"], criteria=["Overall"],
                            mode="generate", retries=2)
        assert len(srv.requests) == 2 * 3  # both orders, three attempts each
    assert j.score.isna().all() and (j.attempts == 3).all()
    with FakeOpenAI(answer="Verdict: A") as srv:
        judge = make_backend("openai_compat", model="judge", base_url=srv.url, backoff=0.01)
        j = openended.judge(judge, few_pairs.head(1), questions, ["s"], ["r"], criteria=["Persona"], mode="generate")
    assert j.score.tolist() == [1.0, 0.0]


def test_tiny_model_end_to_end_with_cache(tiny_model, few_pairs, questions, tmp_path):
    be = make_backend("hf", str(tiny_model), batch_size=4)
    cache = ResponseCache(tmp_path / "c.sqlite")
    answers = openended.generate_answers(be, few_pairs, questions, cache, max_new_tokens=6)
    assert len(answers) == 4 and all(isinstance(a, str) for a in answers)
    j = openended.judge(be, few_pairs, questions, answers, answers[::-1], mode="logprob", cache=cache)
    assert j.verdict.isin(openended.VERDICTS).all() and j.score.notna().all()
    n = len(cache)
    openended.judge(be, few_pairs, questions, answers, answers[::-1], mode="logprob", cache=cache)
    assert len(cache) == n  # the second judging is read from the cache


def test_an_interrupted_open_ended_step_resumes_where_it_stopped(tmp_path, tiny_model, questions):
    """Kill the judging part-way (SIGKILL): the finished chunks are in the cache, and the rerun asks only for
    the rest (the open answers go through the same loop, cache.fill)."""
    import textwrap

    from kill_helper import kill_after_cached

    cache_path = tmp_path / "c.sqlite"
    setup = f"""
        from subgroup_values.evaluation import openended
        from subgroup_values.backends.cache import ResponseCache
        from subgroup_values.backends.hf import HFBackend
        from subgroup_values.survey.dataset import load_pairs, sample_pairs
        from subgroup_values.survey.questions import load_questions
        qs = {{q.qid: q for q in load_questions(rule="all")}}
        pairs = sample_pairs(load_pairs(split="ood"), 16, seed=2)
        be = HFBackend({str(tiny_model)!r}, dtype="float32", batch_size=4)
        answers = ["a short answer"] * 16
    """
    script = textwrap.dedent(setup + """
        import time
        orig = be.score
        def slow(reqs):
            time.sleep(0.5)
            return orig(reqs)
        be.score = slow
        openended.judge(be, pairs, qs, answers, ["another answer"] * 16, criteria=["Overall"], cache=ResponseCache(CACHE),
                        chunk_size=4)
    """).replace("CACHE", repr(str(cache_path)))
    kept = kill_after_cached(script, cache_path, 8)
    assert 8 <= kept < 32
    be = make_backend("hf", str(tiny_model), dtype="float32", batch_size=4)
    asked = []
    orig = be.score
    be.score = lambda reqs: asked.extend(reqs) or orig(reqs)
    pairs = sample_pairs(load_pairs(split="ood"), 16, seed=2)
    j = openended.judge(be, pairs, questions, ["a short answer"] * 16, ["another answer"] * 16, criteria=["Overall"],
                        cache=ResponseCache(cache_path), chunk_size=4)
    assert len(j) == 32 and len(asked) == 32 - kept
