"""Write data/questions.csv, the study's question bank (a maintainer's tool, run once; the CSV is committed).

Facts (which items Singapore asked, their answer codes and labels, their official wording and WVS thematic
section) come from the official WVS-7 documents as tabulated in ``$WVS_DOCS/codebook/derived/`` (the v6.0
codebook's value labels and the Singapore questionnaire/report wording). Our own choices live here, in code:
Singapore-specific wording fixes, the ordinal recodes and the category names.

    python scripts/make_question_bank.py ../shared/wvs7_sgp > data/questions.csv
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pandas as pd

# Official WVS-7 thematic sections -> the category names used in the study.
CATEGORY = {
    "Social values, attitudes & stereotypes": "Social Values & Attitudes",
    "Happiness & well-being": "Happiness & Well-being",
    "Social capital, trust & organizational membership": "Social Capital & Trust",
    "Economic values": "Economic Values",
    "Corruption": "Corruption",
    "Migration": "Migration",
    "Security": "Security",
    "Science & technology": "Science & Technology",
    "Religious values": "Religious Values",
    "Ethical values & norms": "Ethical Values & Norms",
    "Political interest & participation": "Political Interest & Participation",
    "Political culture & regimes": "Political Culture & Regimes",
}

# Our wording where the official text is a bare label or needs the Singapore context.
WORDING = {
    "Q46": "Taking all things together, would you say you are very happy, rather happy, not very happy or not at all happy?",
    "Q144": "Have you yourself been the victim of a crime during the past year?",
    "Q145": "And what about your immediate family: has anyone in it been the victim of a crime during the past year?",
    "Q173": "Independently of whether you attend religious services or not, would you say you are a religious person, not a religious person or an atheist?",
    "Q222": "When elections take place, do you vote always, usually or never? National level elections.",
    "Q254": "How proud are you to be Singaporean?",
    "Q258": "People have different views about themselves and how they relate to the world. How close do you feel to Asia?",
}

# Ordinal recodes: survey code -> position on the ordinal scale (None = not on the scale: treated as missing,
# reason 'off-scale'). Every other item keeps its codes, which are already monotonic.
RECODE: dict[str, dict[int, int | None]] = {
    # better off / worse off / about the same -> better, same, worse
    "Q56": {1: 1, 2: 3, 3: 2},
    # 'Other answer' is not a point between the two statements
    "Q111": {1: 1, 2: 2, 3: None},
    # 'Hard to say' (code 0) sits between agree and disagree
    "Q119": {1: 1, 2: 2, 0: 3, 3: 4, 4: 5},
    # 'Not allowed to vote' (non-citizens) is not a frequency of voting
    "Q222": {1: 1, 2: 2, 3: 3, 4: None},
    # 'I am not Singaporean' is not a degree of pride
    "Q254": {1: 1, 2: 2, 3: 3, 4: 4, 5: None},
}
for _q in range(241, 250):  # spontaneous 'it is against democracy' (0) joins the scale's low end
    RECODE[f"Q{_q}"] = {0: 1, **{c: c for c in range(1, 11)}}

LABEL_FIX = {"Q56": {3: "About the same"}, "Q119": {0: "Hard to say"}}


def clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("I 'd", "I'd").replace("?.", "?").replace("?:", "?").replace(":.", ":")
    text = re.sub(r"\bthis country's\b", "Singapore's", text)
    text = re.sub(r"\bthis country\b", "Singapore", text)
    text = text.replace("[nationality]", "Singaporean").replace("[Continent; e.g. Europe, Asia etc.]", "Asia")
    return re.sub(r"\s+", " ", text).strip()


def battery(text: str, short_label: str) -> str:
    """Mark the item of a battery question ('<stem> <item>') off from its stem: '<stem>: "<item>"'."""
    item = short_label.split(": ", 1)[-1].strip()
    for cand in (item, item.rstrip(".")):
        if len(cand) > 2 and text.lower().endswith(cand.lower()) and len(text) > len(cand) + 20:
            stem = text[: -len(cand)].rstrip(" :.")
            return f'{stem}: "{text[-len(cand):]}"'
    return text


def main(docs: Path) -> None:
    items = pd.read_csv(docs / "codebook/derived/wvs7_sgp_items.csv").set_index("variable")
    labels = pd.read_csv(docs / "codebook/derived/wvs7_value_labels_long.csv", dtype={"code": str})
    labels = labels[labels.code.str.fullmatch(r"-?\d+")].assign(code=lambda d: d.code.astype(int))
    is_value_item = items.index.str.fullmatch(r"Q\d+") & (items.index.str[1:].str.zfill(3) <= "259")
    rows = items[is_value_item & items.asked_in_sgp.astype(bool) & (items.answer_data_type == "ordinal")]
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["qid", "category", "short_label", "question", "options", "recode", "scale", "low_label",
                  "high_label"])
    for qid, row in rows.iterrows():
        lab = labels[(labels.variable == qid) & (labels.code >= 0)].set_index("code").label.to_dict()
        lab.update(LABEL_FIX.get(qid, {}))
        recode = RECODE.get(qid, {c: c for c in sorted(lab)})
        options: dict[int, str] = {}
        for code, value in sorted(recode.items(), key=lambda kv: (kv[1] is None, kv[1] or 0, kv[0] != kv[1])):
            if value is not None and value not in options:  # a merged value keeps the label of its own code
                options[value] = re.sub(r"^[AB]: ", "", clean(lab[code]))
        values = sorted(options)
        assert values == list(range(values[0], values[-1] + 1)), qid
        text = WORDING.get(qid) or battery(clean(row.question_text_sgp_report), clean(row.short_label))
        out.writerow([
            qid, CATEGORY[row.section], row.short_label, text,
            json.dumps([[v, options[v]] for v in values], ensure_ascii=False),
            json.dumps({str(k): v for k, v in recode.items()}) if qid in RECODE else "",
            f"{values[0]}-{values[-1]}", options[values[0]], options[values[-1]],
        ])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
