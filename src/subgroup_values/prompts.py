"""Persona prompts and the parsing of replies.

A persona says only what is known of the subgroup: a pair knows two attributes and the prompt names only
those two. Templates (``TEMPLATES``):

- ``persona_user`` (default): the question and its options first, then a third-person description in the user
  message: "How would a Malay Muslim person living in Singapore most likely answer this question?". The persona
  sits right before the answer, and the long shared part (question and options) comes first, so a backend
  computes it once for all 98 subgroups (about 3x less work per prompt than persona-first).
- ``persona_system``: the persona in the system message, in the second person ("You are a woman aged 25 to 34
  living in Singapore ..."), the question in the user message: the classic persona prompt. Its shared part is
  the persona, reused across a subgroup's questions.
- ``no_persona``: the same as ``persona_user`` for "a person living in Singapore": the model's population
  answer, the reference for how much a persona changes anything.

Every template ends by asking for ``Answer: <number>``; log-probability scoring reads the options right after
the assistant's ``Answer:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .questions import Question
from .subgroups import DIMENSIONS

TEMPLATES = ("persona_user", "persona_system", "no_persona")
DEFAULT_TEMPLATE = "persona_user"
ANSWER_PREFIX = "Answer:"
INSTRUCTION = ("Reply with the number of the option you choose, in the form \"Answer: <number>\". "
               "Do not explain.")


# How each attribute enters the persona: an adjective before the noun, the noun itself, or a phrase after it.
ADJECTIVE = {"ethnicity": {"Chinese": "Chinese", "Malay": "Malay", "Indian": "Indian"},
             "religion": {"Buddhist": "Buddhist", "Protestant": "Protestant Christian", "Muslim": "Muslim",
                          "Roman Catholic": "Roman Catholic", "Hindu": "Hindu"}}
NOUN = {"Male": "man", "Female": "woman"}
AFTER = {"age": {"21-24": "aged 21 to 24", "25-34": "aged 25 to 34", "35-44": "aged 35 to 44",
                 "45-54": "aged 45 to 54", "55-64": "aged 55 to 64", "65+": "aged 65 or older"},
         "religion": {"No religion": "with no religious affiliation",
                      "Other religion": "who follows another religion (such as Taoism)"}}


def describe(attributes: dict[str, str]) -> str:
    """A noun phrase naming only the known attributes, e.g. {"sex": "Female", "age": "25-34"} -> 'a woman aged
    25 to 34'; {"ethnicity": "Malay", "religion": "Muslim"} -> 'a Malay Muslim person'."""
    known = {d: v for d, v in attributes.items() if d in DIMENSIONS and isinstance(v, str) and v}
    for dim, label in known.items():
        if label not in DIMENSIONS[dim].categories.values():
            raise ValueError(f"Unknown {dim} {label!r}; expected one of {list(DIMENSIONS[dim].categories.values())}.")
    adjectives = [ADJECTIVE[d][known[d]] for d in ("ethnicity", "religion") if known.get(d) in ADJECTIVE.get(d, {})]
    noun = NOUN.get(known.get("sex"), "person")
    after = [AFTER[d][known[d]] for d in ("age", "religion") if known.get(d) in AFTER.get(d, {})]
    head = " ".join([*adjectives, noun])
    article = "an" if head[0].lower() in "aeiou" else "a"
    return " ".join([article, head, *after])


SYSTEM_SURVEY = ("You are helping with the World Values Survey in Singapore. Answer each question with the number "
                 "of one option.")


def question_block(q: Question) -> str:
    options = "\n".join(f"{v}. {label}" for v, label in q.options)
    return f"Question: {q.text}\n\nOptions:\n{options}"


def build_messages(q: Question, attributes: dict[str, str], template: str = DEFAULT_TEMPLATE) -> list[dict]:
    """Chat messages for one (question, subgroup) pair."""
    if template == "persona_system":
        system = (f"You are {describe(attributes)} living in Singapore, taking part in the World Values Survey. "
                  "Answer every question as yourself, from your own point of view.")
        return [{"role": "system", "content": system},
                {"role": "user", "content": f"{question_block(q)}\n\n{INSTRUCTION}"}]
    if template == "persona_user":
        user = (f"{question_block(q)}\n\nHow would {describe(attributes)} living in Singapore most likely answer "
                f"this question? {INSTRUCTION}")
        return [{"role": "system", "content": SYSTEM_SURVEY}, {"role": "user", "content": user}]
    if template == "no_persona":
        user = f"{question_block(q)}\n\nHow would a person living in Singapore most likely answer this question? {INSTRUCTION}"
        return [{"role": "system", "content": SYSTEM_SURVEY}, {"role": "user", "content": user}]
    raise ValueError(f"Unknown template {template!r}; expected one of {TEMPLATES}.")


def prefix_group(template: str, qid: str, subgroup_id: str) -> str:
    """Requests whose prompts share a long prefix: a subgroup's questions (persona first) or a question's
    subgroups (question first). Backends reuse the shared part's computation."""
    return f"subgroup:{subgroup_id}" if template == "persona_system" else f"question:{qid}"


# ---- parsing replies ---------------------------------------------------------------------------------------

REFUSAL_PATTERNS = re.compile(
    r"\b(I can(?:'|no)t|I cannot|I'm (?:not able|unable)|I am (?:not able|unable)|as an AI|I don't have (?:personal|"
    r"opinions|feelings)|I do not have (?:personal|opinions)|I won't|I prefer not|not comfortable|language model)\b",
    re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    choice: int | None
    status: str  # "ok", "refusal", "unparseable", "out_of_range", "empty"

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


def parse_answer(reply: str, valid: list[int] | tuple[int, ...], labels: dict[int, str] | None = None) -> ParsedAnswer:
    """Read the chosen option from a reply: 'Answer: 3', '3', "I'd say 3 (agree)"; refusals are recognised.

    Rules, in order: an explicit 'Answer: N' wins; else a reply that is only a number; else, when ``labels`` are
    given, the one option whose label the reply names ("I would say it is not very important"); else the first
    number in the reply that is a valid option. A number outside the options is 'out_of_range'; nothing
    readable, 'unparseable' (or 'refusal' when the reply declines to answer).
    """
    text = (reply or "").strip()
    if not text:
        return ParsedAnswer(None, "empty")
    valid_set = {int(v) for v in valid}
    m = re.search(r"answer\s*(?:is)?\s*[:=]?\s*\**\s*(-?\d+)", text, re.IGNORECASE)
    if m is None:
        m = re.fullmatch(r"\**\s*(-?\d+)\s*[.)]?\**.*", text, re.DOTALL) if re.match(r"\**\s*-?\d", text) else None
    if m is not None:
        n = int(m.group(1))
        return ParsedAnswer(n, "ok") if n in valid_set else ParsedAnswer(None, "out_of_range")
    if labels:
        by_label = _label_choice(text, labels)
        if by_label is not None and by_label in valid_set:
            return ParsedAnswer(by_label, "ok")
    if REFUSAL_PATTERNS.search(text):
        return ParsedAnswer(None, "refusal")
    numbers = [int(x) for x in re.findall(r"(?<![\d.])(-?\d+)(?![\d.])", text)]
    for n in numbers:
        if n in valid_set:
            return ParsedAnswer(n, "ok")
    if numbers:
        return ParsedAnswer(None, "out_of_range")
    return ParsedAnswer(None, "unparseable")
