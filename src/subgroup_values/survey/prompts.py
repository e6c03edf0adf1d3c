"""Persona prompts and the parsing of replies.

A persona says only what is known of the subgroup: a pair knows two attributes and the prompt names only
those two. Templates (``TEMPLATES``):

- ``persona_user`` (default): the question and its options first, then "How would the following respondent
  from Singapore most likely answer this question?" and, last, "Respondent: a Malay Muslim person". Everything
  but the persona's few words is the same for all 98 subgroups of a question, so a backend (and the packed
  trainer) computes it once per question: a subgroup costs ~12 tokens instead of ~176. (Until issue 14 the
  instruction sat after the persona, in every subgroup's part: ~46 tokens each; the answer-format instruction
  now lives in the system message.)
- ``persona_system``: the persona in the system message, in the second person ("You are a woman aged 25 to 34
  living in Singapore ..."), the question in the user message: the classic persona prompt. Its shared part is
  the persona, reused across a subgroup's questions.
- ``no_persona``: the same as ``persona_user`` for "Respondent: a person": the model's population answer, the
  reference for how much a persona changes anything.
- ``marginals``: ``persona_user`` plus, before the respondent, how the survey's respondents with each of the
  persona's single attributes answered (their weighted answer shares, from the training cells only): can a
  language model compose the marginals better than the log-linear rule of :mod:`subgroup_values.evaluation.baselines`?

Every template ends by asking for ``Answer: <number>``; log-probability scoring reads the options right after
the assistant's ``Answer:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.choices import TEMPLATES
from .questions import Question
from .study import Study, resolve

DEFAULT_TEMPLATE = "persona_user"
#: The assistant's reply starts with this; option scoring reads what follows (the one definition).
ANSWER_PREFIX = "Answer:"
#: The role of the one message of a plain-text prompt (``base_completion``): written as is, no chat template.
PLAIN_ROLE = "plain_text"
INSTRUCTION = ("Answer each question with the number of the option you choose, in the form \"Answer: <number>\". "
               "Do not explain.")


def attributes_of(row, study: Study | None = None) -> dict[str, str]:
    """The known attributes of a pair's subgroup ({"age": "65+", "religion": "Muslim"}) from a pairs-table row:
    the dimensions its ``subgroup_id`` names (``age=2|religion=5``), in that order, or ``study``'s dimensions."""
    dims = list(study.dimensions) if study is not None else [p.split("=", 1)[0] for p in
                                                             str(row.get("subgroup_id") or "").split("|") if p]
    return {d: row[d] for d in dims if isinstance(row.get(d), str) and row[d]}


def describe(attributes: dict[str, str], study: Study | None = None) -> str:
    """A noun phrase naming only the known attributes, in the study config's words: the noun ("a woman"; else
    "person"), the words before it and the phrases after it, each in the order of the study's dimensions, e.g.
    {"sex": "Female", "age": "25-34"} -> 'a woman aged 25 to 34'; {"ethnicity": "Malay", "religion": "Muslim"} ->
    'a Malay Muslim person'. ``study`` None: Singapore's words."""
    dims = resolve(study).dimensions
    unknown = [d for d in attributes if d not in dims and isinstance(attributes[d], str) and attributes[d]]
    if unknown:
        raise ValueError(f"Unknown dimension(s) {unknown}; the study's are {list(dims)}.")
    known = {d: attributes[d] for d in dims if isinstance(attributes.get(d), str) and attributes[d]}
    for dim, label in known.items():
        if label not in dims[dim].phrases:
            raise ValueError(f"Unknown {dim} {label!r}; expected one of {list(dims[dim].categories.values())}.")
    said = [(dims[d].phrases[v]) for d, v in known.items()]
    nouns = [w for pos, w in said if pos == "noun"]
    head = " ".join([*(w for pos, w in said if pos == "before"), nouns[0] if nouns else "person"])
    article = "an" if head[0].lower() in "aeiou" else "a"
    return " ".join([article, head, *(w for pos, w in said if pos == "after")])


#: The questionnaire's placeholders for the country's name ("[your country]", "[my country]", "[Country]").
PLACEHOLDER = re.compile(r"\[(?:your |my |the )?country\]", re.IGNORECASE)


def system_survey(country: str | None = None) -> str:
    country = country or resolve(None).country_name
    return f"You are helping with the World Values Survey in {country}. {INSTRUCTION}"


def fill_placeholders(text: str, country: str | None = None) -> str:
    """The questionnaire's "[your country]" / "[my country]" / "[Country]" replaced by the country's name."""
    return PLACEHOLDER.sub(country or resolve(None).country_name, text)


def question_block(q: Question, country: str | None = None) -> str:
    country = country or resolve(None).country_name
    options = "\n".join(f"{v}. {fill_placeholders(label, country)}" for v, label in q.options)
    return f"Question: {fill_placeholders(q.text, country)}\n\nOptions:\n{options}"


def marginal_lines(q: Question, marginals: dict[str, list[float]], study: Study | None = None) -> str:
    """One line per single attribute: 'a man: 1: 80%, 2: 15%, ...' (shares of the attribute's respondents)."""
    lines = []
    for dim, dist in marginals.items():
        label, shares = dist
        total = sum(shares)
        if len(shares) != q.n_options or total <= 0:
            raise ValueError(f"{q.qid}: the marginal of {dim}={label} needs {q.n_options} non-negative shares with a "
                             f"positive total, got {shares}.")
        parts = ", ".join(f"{v}: {100 * x / total:.0f}%" for (v, _), x in zip(q.options, shares))
        lines.append(f"- {describe({dim: label}, study)}: {parts}")
    return "\n".join(lines)


def build_messages(q: Question, attributes: dict[str, str], template: str = DEFAULT_TEMPLATE,
                   country: str | None = None, marginals: dict[str, tuple[str, list[float]]] | None = None,
                   study: Study | str | None = None) -> list[dict]:
    """Chat messages for one (question, subgroup) pair of ``study`` (its persona words and country; None:
    Singapore's); ``country`` overrides the country's name. The ``marginals`` template needs ``marginals``:
    {dimension: (its value, the weighted answer counts of that single-attribute training cell)} for each known
    attribute."""
    study = resolve(study)
    country = country or study.country_name
    block = question_block(q, country)
    if template == "marginals":
        if not marginals or set(marginals) != set(attributes):
            raise ValueError(f"The marginals template needs one training-cell distribution per known attribute "
                             f"{sorted(attributes)}; got {sorted(marginals or {})}.")
        user = (f"{block}\n\nShares of respondents from {country} choosing each option, by one characteristic:\n"
                f"{marginal_lines(q, marginals, study)}\nHow would the following respondent, who has all of these "
                f"characteristics, most likely answer this question?\nRespondent: {describe(attributes, study)}")
        return [{"role": "system", "content": system_survey(country)}, {"role": "user", "content": user}]
    if template == "persona_system":
        system = (f"You are {describe(attributes, study)} living in {country}, taking part in the World Values Survey. "
                  "Answer every question as yourself, from your own point of view.")
        return [{"role": "system", "content": system}, {"role": "user", "content": f"{block}\n\n{INSTRUCTION}"}]
    if template == "base_completion":  # plain text: persona_user's words, then "Answer:" (added by the backend)
        text = (f"{system_survey(country)}\n\n{block}\n\nHow would the following respondent "
                f"from {country} most likely answer this question?\nRespondent: {describe(attributes, study)}\n")
        return [{"role": PLAIN_ROLE, "content": text}]
    if template in ("persona_user", "no_persona"):
        # the persona's words come last: everything before them is shared by every subgroup of the question
        persona = describe(attributes if template == "persona_user" else {}, study)
        user = (f"{block}\n\nHow would the following respondent from {country} most likely answer this question?"
                f"\nRespondent: {persona}")
        return [{"role": "system", "content": system_survey(country)}, {"role": "user", "content": user}]
    raise ValueError(f"Unknown template {template!r}; expected one of {TEMPLATES}.")


def plain_text(messages: list[dict]) -> str | None:
    """The whole prompt of a plain-text (``base_completion``) request, written as is; None for chat messages."""
    if len(messages) == 1 and messages[0].get("role") == PLAIN_ROLE:
        return messages[0]["content"]
    if any(m.get("role") == PLAIN_ROLE for m in messages):
        raise ValueError(f"A plain-text prompt is one message of role {PLAIN_ROLE!r}; got roles "
                         f"{[m.get('role') for m in messages]}.")
    return None


def prefix_group(template: str, qid: str, subgroup_id: str) -> str:
    """Requests whose prompts share a long prefix: a subgroup's questions (persona first) or a question's
    subgroups (question first). Backends reuse the shared part's computation."""
    return f"subgroup:{subgroup_id}" if template == "persona_system" else f"question:{qid}"


# ---- parsing replies ---------------------------------------------------------------------------------------

REFUSAL_PATTERNS = re.compile(
    r"\b(I can(?:'|no)t|I cannot|I'm (?:not able|unable)|I am (?:not able|unable)|as an AI|I don't have (?:personal|"
    r"opinions|feelings)|I do not have (?:personal|opinions)|I won't|I prefer not|not comfortable|language model|"
    r"(?:would|will) not be able to|not (?:be )?able to (?:provide|answer|give|say)|I (?:would|will) not answer|"
    r"I'm not sure (?:how to (?:respond|answer)|of the answer)|I am not sure (?:how to (?:respond|answer)|of the answer)"
    r"|unable to (?:provide|answer|give))", re.IGNORECASE)

#: Statuses of a prediction that is not an answer: scored as wrong (accuracy 0, NMAE 1) and counted.
UNANSWERED = ("refusal", "unparseable", "contradictory", "hedged", "out_of_range", "empty", "echoed_options",
              "no_option_logprob", "failed")
#: Of those, the ones counted as unreadable replies (a refusal is counted on its own).
UNREADABLE = tuple(s for s in UNANSWERED if s != "refusal")

@dataclass(frozen=True)
class ParsedAnswer:
    choice: int | None
    status: str  # "ok", or one of UNANSWERED ("refusal", "unparseable", "hedged", "out_of_range", "empty", ...)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _label_choice(text: str, labels: dict[int, str]) -> int | None:
    """The one option whose label the reply names ('Not very important' beats the 'Very important' inside it)."""
    spans = []
    for value, label in labels.items():
        if not label or label.strip().isdigit():
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(label.strip().lower()) + r"(?!\w)", text.lower()):
            spans.append((m.start(), m.end(), value))
    kept = [s for s in spans if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)]
    values = {v for _, _, v in kept}
    return values.pop() if len(values) == 1 else None


# "Answer: 3", "The answer is 3", "The answer to this question is 3" (what SmolLM2 writes most on 1-10 scales)
_ANSWER = r"answer(?:\s+to\s+(?:this|the)\s+question)?\s*(?:is|would be|will be)?\s*[:=]?"
_EXPLICIT = re.compile(_ANSWER + r"\s*[\"'“*]*\s*(?:option\s*)?(-?\d+)(?![\d.]\d)", re.IGNORECASE)
_EXPLICIT_TEXT = re.compile(_ANSWER + r"\s*(.+)", re.IGNORECASE)
_ENUM_LINE = re.compile(r"^\s*\**\s*(-?\d+)\s*[.)]\s*(.*)$")
_CHOICE_PHRASE = re.compile(
    r"(?:\boption|\bnumber|\bchoose|\bchoice is|\bpick|\bselect|\bgo with|\bI(?:'d| would)? say|\bI think|"
    r"\bI believe|\bwould be)\s*(?:option|number)?\s*[:#]?\s*\**(-?\d+)(?![\d.]\d)", re.IGNORECASE)
_NEGATED_CHOICE = re.compile(r"\b(?:would|will|do) not (?:choose|pick|select)\b|\bwouldn't (?:choose|pick)\b",
                             re.IGNORECASE)


#: A second option offered beside the first: "1 or 2", "2/4", "2-3", "2 to 3", "2, 3", "2 and 3", "2 or maybe 3".
_HEDGE = re.compile(r"\s*[.)]?\s*\**\s*(?:/|,|-|–|\bor\b|\band\b|\bto\b)\s*(?:maybe\s*|perhaps\s*)?(?:option\s*)?"
                    r"(-?\d+)(?![\d.]\d)", re.IGNORECASE)


def _number(n: int, valid_set: set[int], text: str = "", end: int = 0) -> ParsedAnswer:
    """The answer ``n`` (read up to ``text[:end]``); ``hedged`` when another option follows it as a second
    answer ("Answer: 1 or 2", "Answer: 2/4"): two options offered are no answer."""
    if n in valid_set and text:
        m = _HEDGE.match(text, end)
        if m is not None and int(m.group(1)) != n and int(m.group(1)) in valid_set:
            return ParsedAnswer(None, "hedged")
    return ParsedAnswer(n, "ok") if n in valid_set else ParsedAnswer(None, "out_of_range")


def parse_answer(reply: str, valid: list[int] | tuple[int, ...], labels: dict[int, str] | None = None) -> ParsedAnswer:
    """Read the chosen option from a reply as a person would.

    Rules, in order:

    1. nothing: ``empty``;
    2. an explicit answer: "Answer: 3", "The answer is 3.", "The answer is option 2" (a number outside the
       options: ``out_of_range``; two options offered, "Answer: 1 or 2", "Answer: 2/4": ``hedged``); or "The
       answer is <the label of one option>";
    3. an echoed option list (two or more lines that start "1. ", "2. ", ...): ``echoed_options``, no answer;
    4. a reply that starts with a number, "3", "3.", "4. Not often" (when the text after the number names
       another option's label, "4. Not often" where 3 is "Not often", the reply is ``contradictory``);
    5. a choice phrase: "I think 2.", "I would choose option 2.", "I'd say 3 (agree)", "option 4";
    6. a refusal ("I would not be able to provide a specific answer"): ``refusal``;
    7. when ``labels`` are given, the one option whose label the reply names ("I would say it is not very
       important"); a reply that names two options, or says it would *not* choose one, is ``unparseable``;
    8. otherwise ``unparseable``: numbers elsewhere in the text ("a person aged 65 or older") are not answers.
    """
    text = (reply or "").strip()
    if not text:
        return ParsedAnswer(None, "empty")
    valid_set = {int(v) for v in valid}
    m = _EXPLICIT.search(text)
    if m is not None:
        return _number(int(m.group(1)), valid_set, text, m.end())
    if labels and not _NEGATED_CHOICE.search(text):
        for tail in _EXPLICIT_TEXT.finditer(text):
            by_label = _label_choice(tail.group(1).split("\n")[0], labels)
            if by_label is not None and by_label in valid_set:
                return ParsedAnswer(by_label, "ok")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    enum = [_ENUM_LINE.match(ln) for ln in lines]
    if sum(e is not None for e in enum) >= 2:
        return ParsedAnswer(None, "echoed_options")
    lead = re.match(r"\**\s*(-?\d+)(?![\d.]\d)", lines[0])  # "2 or 3", "3. or 4": two options offered
    if lead is not None and _number(int(lead.group(1)), valid_set, lines[0], lead.end()).status == "hedged":
        return ParsedAnswer(None, "hedged")
    first = _ENUM_LINE.match(lines[0]) or re.fullmatch(r"\**\s*(-?\d+)\s*\**\s*()", lines[0])
    if first is not None:
        n = int(first.group(1))
        named = _label_choice(first.group(2), labels) if labels and first.group(2) else None
        if named is not None and named != n:
            return ParsedAnswer(None, "contradictory")
        return _number(n, valid_set)
    m = _CHOICE_PHRASE.search(text)
    if m is not None and not _NEGATED_CHOICE.search(text):
        return _number(int(m.group(1)), valid_set, text, m.end())
    if REFUSAL_PATTERNS.search(text):
        return ParsedAnswer(None, "refusal")
    if labels and not _NEGATED_CHOICE.search(text):
        by_label = _label_choice(text, labels)
        if by_label is not None and by_label in valid_set:
            return ParsedAnswer(by_label, "ok")
    return ParsedAnswer(None, "unparseable")
