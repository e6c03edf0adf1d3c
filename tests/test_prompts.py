"""Persona prompts say only what is known; replies are parsed into a choice or a reason why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from subgroup_values.survey import prompts
from subgroup_values.survey.prompts import TEMPLATES, ParsedAnswer, build_messages, describe, parse_answer, prefix_group


def test_persona_names_only_known_attributes(questions):
    q = questions["Q182"]
    pair = {"age": "65+", "religion": "Muslim", "sex": None, "ethnicity": float("nan")}
    text = " ".join(m["content"] for m in build_messages(q, pair, "persona_user"))
    assert "a Muslim person aged 65 or older" in text
    for word in ("woman", " man ", "Chinese", "Malay", "Indian"):
        assert word not in text
    assert describe({"sex": "Female", "age": "21-24"}) == "a woman aged 21 to 24"
    assert describe({"ethnicity": "Indian", "religion": "Hindu"}) == "an Indian Hindu person"
    assert describe({"ethnicity": "Chinese", "religion": "No religion"}) == "a Chinese person with no religious affiliation"
    with pytest.raises(ValueError, match="Unknown religion 'Jedi'"):
        describe({"religion": "Jedi"})


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_lists_options_and_asks_for_answer(questions, template):
    q = questions["Q241"]
    marginals = {"sex": ("Male", [1.0] * q.n_options)} if template == "marginals" else None
    msgs = build_messages(q, {"sex": "Male"}, template, marginals=marginals)
    text = "\n".join(m["content"] for m in msgs)
    assert "10. An essential characteristic of democracy" in text and "Answer: <number>" in text
    assert ("a man" in text) == (template != "no_persona")
    with pytest.raises(ValueError, match="Unknown template"):
        build_messages(q, {}, "pirate")


def test_prefix_groups_follow_the_shared_part():
    assert prefix_group("persona_system", "Q1", "sex=1") == "subgroup:sex=1"
    assert prefix_group("persona_user", "Q1", "sex=1") == "question:Q1"


@pytest.mark.parametrize("reply,choice,status", [
    ("Answer: 3", 3, "ok"), ("3", 3, "ok"), ("I'd say 3 (agree)", 3, "ok"), ("**Answer: 2**", 2, "ok"),
    ("The answer is 4.", 4, "ok"), ("10", 10, "ok"), ("Answer: 10 (always)", 10, "ok"),
    ("1. Very important\n2. Rather important", None, "echoed_options"),
    ("I cannot answer that as an AI language model.", None, "refusal"),
    ("As an AI, I don't have personal opinions.", None, "refusal"),
    ("Answer: 11", None, "out_of_range"), ("It depends on many things.", None, "unparseable"), ("", None, "empty"),
    # SmolLM2's most common reply on 1-10 scales; the person it describes is not an answer
    ("The answer to this question is 10.", 10, "ok"), ("The answer to the question would be 4.", 4, "ok"),
    ("The most likely respondent to answer this question would be a person aged 45 to 54.", None, "unparseable"),
])
def test_parse_answer(reply, choice, status):
    parsed = parse_answer(reply, list(range(1, 11)))
    assert (parsed.choice, parsed.status) == (choice, status)


LABELS = {1: "Very important", 2: "Rather important", 3: "Not very important", 4: "Not at all important"}


@pytest.mark.parametrize("reply,choice,status", [
    ("I would say it is very important.", 1, "ok"),
    ('The person would answer "Not Very Important" to the option', 3, "ok"),
    ("Answer: 2 (not at all important)", 2, "ok"),  # an explicit number wins over a label
    ("Very important or rather important, hard to say", None, "unparseable"),  # two labels: ambiguous
    ("As an AI I cannot say.", None, "refusal"),
])
def test_parse_answer_reads_option_labels(reply, choice, status):
    parsed = parse_answer(reply, [1, 2, 3, 4], labels=LABELS)
    assert (parsed.choice, parsed.status) == (choice, status)


@pytest.mark.parametrize("reply,choice,status", [
    ("I think 2.", 2, "ok"), ("I would choose option 2.", 2, "ok"), ("option 4", 4, "ok"),
    ("1. Agree strongly\n2. Agree\n3. Disagree", None, "echoed_options"),
    ("I would not be able to provide a specific answer to this", None, "refusal"),
    ("A Muslim person aged 65 or older living in Singapore", None, "unparseable"),  # numbers of the persona
    ("The answer is 7.", None, "out_of_range"),
])
def test_parse_answer_reads_like_a_person(reply, choice, status):
    parsed = parse_answer(reply, [1, 2, 3, 4, 5], labels={1: "Agree strongly", 2: "Agree", 3: "Disagree"})
    assert (parsed.choice, parsed.status) == (choice, status)


def test_parse_real_replies_of_the_reference_run():
    """Replies the embedded model gave in the reference run's generate mode (base model, OOD sample), each read
    by hand: echoed option lists, refusals, self-contradicting "4. Not often" (where 3 is "Not often"), persona
    echoes, explicit answers by number and by label."""
    import pandas as pd

    from subgroup_values.survey.questions import load_questions

    questions = {q.qid: q for q in load_questions(rule="all")}
    cases = pd.read_csv(Path(__file__).parent / "fixtures" / "generate_replies.csv", dtype={"choice": "Int64"},
                        keep_default_na=False, na_values={"choice": [""]})
    assert len(cases) >= 100 and set(cases.status) >= {"ok", "echoed_options", "refusal", "contradictory"}
    wrong = []
    for row in cases.itertuples():
        q = questions[row.qid]
        parsed = parse_answer(row.reply, [v for v, _ in q.options], labels=dict(q.options))
        expected = (None if pd.isna(row.choice) else int(row.choice), row.status)
        if (parsed.choice, parsed.status) != expected:
            wrong.append((row.qid, row.reply, expected, (parsed.choice, parsed.status)))
    assert not wrong, wrong


def test_no_placeholder_left_in_any_prompt():
    from subgroup_values.survey.questions import load_questions

    for q in load_questions(rule="all"):
        for template in TEMPLATES:
            flat = {"sex": ("Female", [1.0] * q.n_options), "age": ("65+", [1.0] * q.n_options)}
            for m in build_messages(q, {"sex": "Female", "age": "65+"}, template,
                                    marginals=flat if template == "marginals" else None):
                assert "[" not in m["content"] and "]" not in m["content"], (q.qid, template, m["content"])
    q112 = next(q for q in load_questions(rule="all") if q.qid == "Q257")
    assert "Singapore" in build_messages(q112, {}, "persona_user")[1]["content"].split("Options:")[0]
    assert "Turkey" in build_messages(q112, {}, "persona_user", country="Turkey")[1]["content"]


def test_marginals_template_names_each_training_cell(questions):
    from subgroup_values.evaluation import baselines
    from subgroup_values.survey import dataset

    all_pairs = dataset.load_pairs()
    ood = all_pairs[all_pairs.split == "ood"]
    row = ood[ood.subgroup_id.str.contains("religion")].iloc[0]
    (m,) = baselines.single_marginals(ood.loc[[row.name]], all_pairs)
    assert set(m) == set(prompts.attributes_of(row))
    q = questions[row.qid]
    text = prompts.build_messages(q, prompts.attributes_of(row), "marginals", marginals=m)[1]["content"]
    for dim, (label, counts) in m.items():
        share = round(100 * counts[0] / sum(counts))
        assert f"- {prompts.describe({dim: label})}: 1: {share}%" in text
    assert text.endswith(f"Respondent: {prompts.describe(prompts.attributes_of(row))}")
    with pytest.raises(ValueError, match="one training-cell distribution per known attribute"):
        prompts.build_messages(q, prompts.attributes_of(row), "marginals")
    with pytest.raises(ValueError, match="non-negative shares"):
        prompts.build_messages(q, prompts.attributes_of(row), "marginals",
                               marginals={d: (lab, [1.0]) for d, (lab, _) in m.items()})


@pytest.mark.parametrize("reply", ["Answer: 1 or 2", "Answer: 2/4", "Answer: 2-3", "The answer is 1 or maybe 3.",
                                   "I'd say 2 or 3", "Answer: 2, 3", "2 or 3",
                                   "3. Or 4", "**2/3**"])
def test_a_hedged_reply_offering_two_options_is_no_answer(reply):
    """Two different option codes offered as the answer are counted as unreadable ("hedged"), never as the first."""
    from subgroup_values.survey.prompts import UNREADABLE

    parsed = parse_answer(reply, [1, 2, 3, 4])
    assert (parsed.choice, parsed.status) == (None, "hedged") and "hedged" in UNREADABLE


@pytest.mark.parametrize("reply, choice", [("Answer: 2 or 2", 2), ("Answer: 2 (agree)", 2), ("Answer: 3, because", 3)])
def test_one_option_or_the_same_option_twice_is_an_answer(reply, choice):
    assert parse_answer(reply, [1, 2, 3, 4]) == ParsedAnswer(choice, "ok")
