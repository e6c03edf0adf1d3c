"""Plain headlines: the findings a reader meets first, one sentence each, in the study's words.

Every finding is a :class:`..core.claims.Claim` whose sentence carries the full statistical detail. A headline is
the second layer: one sentence under ~30 words, rounded numbers, no run id, no term a social scientist would need a
glossary for, and the comparison that gives the number its meaning (the model beside the answer that needs no
model). Headlines are Jinja2 templates filled from the claims' numbers and verdicts; the decisions (is it below,
does it rise) stay where the claims make them, in Python: a template only words a verdict, never decides one.

README's ``headlines`` block (:func:`update_readme`, run by notebook 7) is the answer paragraph and these bullets.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from ..core import claims as claims_mod

ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
ENV.filters["pct"] = lambda x: f"{100 * float(x):.0f}%"
ENV.filters["num"] = lambda x: f"{int(x):,}"

#: The claims the headlines read (README's first screen), in the order a reader meets them.
HEADLINE_CLAIMS = ("data.counts", "evaluation.base_ood.vs_population_mode.accuracy.all",
                   "finetune.sft_ood.accuracy.all", "evaluation.sft_ood.vs_population_mode.accuracy.all",
                   "finetune.sft_ood.accuracy.divergent", "fairness.ood.paradox")

#: The answer to the study's question, above the headlines. ``C`` is every claim by id.
ANSWER = (
    "{% set zs = C['evaluation.base_ood.vs_population_mode.accuracy.all'] %}"
    "{% set ft = C['evaluation.sft_ood.vs_population_mode.accuracy.all'] %}"
    "{% if zs.verdict == 'below' and ft.verdict == 'below' %}Not for this small model.{% elif ft.verdict == 'above' %}"
    "Partly, once fine-tuned.{% else %}Not clearly.{% endif %} "
    "This study runs {{ model }}{% if size %}, {{ size }},{% endif %} on a CPU; the paper's models have 3 to 8 "
    "billion. As a member of a subgroup of {{ country }}, it gives that subgroup's most common survey answer "
    "{% if zs.verdict == 'below' %}less often{% elif zs.verdict == 'above' %}more often{% else %}about as often"
    "{% endif %} than simply giving the population's"
    "{% if ft.verdict == zs.verdict %}, before and after fine-tuning{% endif %}."
)

#: One template per headline, filled with the claim ``c``, its ``x`` (extra numbers) and every claim ``C``.
HEADLINES = {
    "data.counts": (
        "The data {% if c.verdict == 'reproduced' %}match every count the paper reports{% else %}differ from the "
        "paper's counts{% endif %}: {{ x.ours.total_pairs | num }} question-and-subgroup pairs."),
    "evaluation.base_ood.vs_population_mode.accuracy.all": (
        "Untrained, the model gives a subgroup's most common answer on {{ x.model | pct }} of pairs; always "
        "giving the population's most common answer scores {{ x.baseline | pct }}"
        "{% if c.verdict == 'below' %}, clearly more{% elif c.verdict == 'above' %}, clearly less"
        "{% else %}, no clear difference{% endif %}."),
    "finetune.sft_ood.accuracy.all": (
        "{% set pm = C['evaluation.sft_ood.vs_population_mode.accuracy.all'] %}"
        "Fine-tuned on other subgroups' answers, it {% if c.verdict == 'rises' %}rises{% elif c.verdict == 'falls' %}"
        "falls{% else %}moves{% endif %} to {{ x.sft | pct }} on subgroup combinations left out of training"
        "{% if pm.verdict == 'below' %}, still clearly below the population's answer ({{ pm.extra.baseline | pct }})"
        "{% elif pm.verdict == 'above' %}, clearly above the population's answer ({{ pm.extra.baseline | pct }})"
        "{% else %}, not clearly different from the population's answer ({{ pm.extra.baseline | pct }}){% endif %}."),
    "finetune.sft_ood.accuracy.divergent": (
        "Where a subgroup's most common answer differs from the population's, "
        "fine-tuning moves it from {{ x.base | pct }} to {{ x.sft | pct }}"
        "{% if c.verdict == 'no clear difference' %}: within the margin of error{% elif c.verdict == 'rises' %}: a clear rise"
        "{% else %}: a clear fall{% endif %}."),
    "fairness.ood.paradox": (
        "The paper found fine-tuning narrows subgroups' gaps in how often the model is right but widens them in how "
        "far off it is; here that {% if c.verdict == 'reproduced' %}holds too{% elif c.verdict == 'not reproduced' %}does not hold"
        "{% else %}is undecided{% endif %}."),
}

#: Words a headline must not use: run ids, and terms only the detail layer defines.
JARGON = re.compile(r"\b(\w+_(?:ood|train|disjoint|generate|refusals|marginals)|BCa|Holm|Bonferroni|NMAE|TV|"
                    r"CV|Norm\. Range|noise floor|headroom|fold|p-value|p =)\b")
MAX_WORDS = 30


def _context(found: dict[str, claims_mod.Claim], claim_id: str | None = None, **extra) -> dict:
    ctx = {"C": found} | extra
    if claim_id is not None:
        c = found[claim_id]
        ctx |= {"c": c, "x": c.extra}
    return ctx


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][\w.,%'-]*", text))


def check(text: str) -> list[str]:
    """What keeps a sentence from being a headline: too long, a run id or an undefined term."""
    out = []
    if _words(text) > MAX_WORDS:
        out.append(f"{_words(text)} words (at most {MAX_WORDS})")
    out += [f"uses {m!r}" for m in sorted(set(m.group(0) for m in JARGON.finditer(text)))]
    return out


def headlines(res_dir: str | Path) -> list[str]:
    """The headlines, from the profile's claims (each checked: :func:`check`)."""
    found = claims_mod.read_profile_claims(res_dir, sorted({i.split(".")[0] for i in HEADLINE_CLAIMS}))
    missing = [i for i in HEADLINE_CLAIMS if i not in found]
    if missing:
        raise KeyError(f"The headlines need the claims {missing}, which {res_dir}/claims/ lacks: run `make report`.")
    out = []
    for claim_id, template in HEADLINES.items():
        text = " ".join(ENV.from_string(template).render(**_context(found, claim_id)).split())
        problems = check(text)
        if problems:
            raise ValueError(f"The headline of {claim_id} is no headline ({'; '.join(problems)}): {text}")
        out.append(text)
    return out


def answer(res_dir: str | Path, model: str, study, size: str = "") -> str:
    """The answer paragraph: the verdicts of the zero-shot and fine-tuned model beside the population's answer,
    the model named with its ``size`` (e.g. "135 million parameters"), the study's country."""
    from ..survey.study import resolve

    study = resolve(study)
    found = claims_mod.read_profile_claims(res_dir, ["evaluation"])
    text = ENV.from_string(ANSWER).render(**_context(
        found, model=model, size=size, country=study.country_name))
    return " ".join(text.split())


def readme_block(res_dir: str | Path, model: str, study=None, size: str = "") -> str:
    return answer(res_dir, model, study, size) + "\n\n" + "\n".join(f"- {h}" for h in headlines(res_dir))


def update_readme(readme: str | Path, res_dir: str | Path, model: str, study=None, size: str = "") -> bool:
    """Rewrite README's ``headlines`` block; True when the file changed."""
    return claims_mod.update_block(readme, "headlines", readme_block(res_dir, model, study, size))
