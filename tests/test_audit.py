"""`subgroup-values audit`: one command audits a model into its own folder and leaves the study's results alone."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from subgroup_values.core.claims import read_claims
from subgroup_values.pipeline import audit, cli

REPO = Path(__file__).resolve().parents[1]
GUARDED = (REPO / "results" / "default", REPO / "figures" / "default")


def _hashes() -> dict[str, str]:
    out = {}
    for root in GUARDED:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(REPO))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_audit_tiny_model_writes_its_card_and_leaves_the_reference_results(tiny_model, tmp_path):
    before = _hashes()
    assert any(k.startswith("results/default/base_ood/") for k in before), "the committed reference runs are missing"
    out = tmp_path / "audit"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-m", "subgroup_values.pipeline.cli", "audit", "--model", str(tiny_model),
                           "--limit", "100", "--out", str(out), "--cache", "", "--n-boot", "100", "--n-perm", "500",
                           "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _hashes() == before, "the audit changed files under results/default/ or figures/default/"

    card = (out / "report_card.md").read_text()
    found = read_claims(out / "claims" / "audit.json")
    ids = {c.id for c in found}
    for run in audit.REFERENCE_RUNS:
        assert f"`{run}`" in card and any(i.startswith(f"audit.vs_{run}.") for i in ids), run
    assert "Llama-3.1-8B" in card and "audit.paper.accuracy" in ids  # the paper's reported models
    assert {"audit.scope", "audit.headroom.paper.floor", "audit.headroom.paper.audited",
            "audit.fairness.attribute_range"} <= ids
    from subgroup_values.survey.dataset import load_pairs
    from subgroup_values.survey.sampling import whole_questions

    ood = load_pairs(split="ood")
    qids = whole_questions(ood, 100, 0)  # a quick look: whole questions, every subgroup of each
    n = int(ood.qid.isin(qids).sum())
    assert len(qids) == 2 and n <= 100
    scope = next(c for c in found if c.id == "audit.scope")
    assert scope.verdict == "sample" and scope.estimate == n and f"seeded sample of {len(qids)} whole questions" in card
    assert card.splitlines()[2].startswith("**In one line:** tiny-random gives a subgroup's most common answer on ")
    assert "disjoint protocol was not computed" in card  # no survey file given: the card says so

    # every sentence of the card that states a number is a claim's sentence
    sentences = {c.sentence for c in found}
    stated = [line[2:] for line in card.splitlines() if line.startswith("- ") and re.search(r"\d", line)]
    assert stated and all(s in sentences for s in stated), [s for s in stated if s not in sentences][:3]

    # the audited pairs are the seeded sample, and the references were compared on the very same pairs
    import pandas as pd

    preds = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    assert len(preds) == n and sorted(preds.qid.unique()) == qids
    systems = pd.read_csv(out / "evaluation" / "systems.csv")
    pairs = systems[(systems.subset == "all") & (systems.metric == "accuracy")].set_index("system").pairs
    assert set(audit.REFERENCE_RUNS) <= set(pairs.index) and (pairs == n).all()
    headroom = pd.read_csv(out / "headroom.csv")
    assert {"audited", "base_ood", "uniform", "noise_floor", "compositional"} <= set(headroom.method)
    assert (headroom[headroom.pairs == "all"].n_pairs == n).all()
    attr = pd.read_csv(out / "per_attribute.csv")
    assert {"audited", "base_ood"} <= set(attr.model)
    prov = json.loads((out / "audit.json").read_text())
    assert prov["sample"] is True and set(prov["reference_runs"]) == set(audit.REFERENCE_RUNS)


@pytest.mark.parametrize("argv, expected", [
    (["--model", "models/no-such-model", "--limit", "5"], "No model folder at 'models/no-such-model'"),
    (["--model", "x", "--backend", "openai_compat", "--base-url", "http://127.0.0.1:9/v1", "--limit", "5"],
     "is unreachable"),
    (["--model", "models/no-such-model", "--limit", "0"], "expected an integer >= 1, got 0"),
    (["--model", "models/no-such-model", "--limit", "5", "--out", "results/default/my-audit"],
     "the study's committed results/ folder"),
])
def test_audit_refuses_bad_input(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    out = ["--out", str(tmp_path / "never")] if "--out" not in argv else []
    with pytest.raises(SystemExit) as exc:
        cli.main(["audit", *argv, *out, "--cache", ""])
    code = exc.value.code
    message = code if isinstance(code, str) else capsys.readouterr().err
    assert code not in (0, None) and expected in message, message
    assert not (tmp_path / "never").exists() and not (REPO / "results" / "default" / "my-audit").exists()


def test_audit_of_a_served_model_through_the_openai_compatible_backend(tmp_path, monkeypatch):
    """The server route: a real HTTP server on 127.0.0.1 (tests/fake_openai.py) answers the chat log-probabilities."""
    from fake_openai import FakeOpenAI

    monkeypatch.chdir(REPO)
    before = _hashes()
    with FakeOpenAI() as srv:
        assert cli.main(["audit", "--backend", "openai_compat", "--base-url", srv.url, "--model", "fake",
                         "--limit", "12", "--out", str(tmp_path / "served"), "--cache", "", "--n-boot", "50",
                         "--n-perm", "200", "--quiet"]) == 0
        assert srv.requests  # it was asked
    assert _hashes() == before
    prov = json.loads((tmp_path / "served" / "audit.json").read_text())
    from subgroup_values.survey.dataset import load_pairs
    from subgroup_values.survey.sampling import whole_questions

    ood = load_pairs(split="ood")  # --limit 12: one whole question, every subgroup of it (fewer is no question)
    assert prov["backend"]["backend"] == "openai_compat" and prov["pairs"] == ood.qid.isin(whole_questions(ood, 12)).sum()
    assert "served at an OpenAI-compatible endpoint" in (tmp_path / "served" / "report_card.md").read_text()


def test_reference_runs_are_read_as_committed_and_restricted_to_the_audited_pairs():
    """A full audit shows a reference run's committed summary (metrics.json), a sample the summary of its committed
    predictions on the sample's pairs; a reference that lacks audited pairs is left out with a note."""
    import pandas as pd

    from subgroup_values.survey.dataset import load_pairs, sample_pairs

    res = REPO / "results" / "default"
    all_pairs = load_pairs()
    full = audit.scored_run(res / "base_ood", all_pairs)
    committed = json.loads((res / "base_ood" / "metrics.json").read_text())
    assert len(full) == committed["pairs"]
    shown = audit.reference_summary("base_ood", full, res, n_boot=20, seed=0)
    assert shown.equals(pd.DataFrame(committed["by_subset"]))
    keys = sample_pairs(all_pairs[all_pairs.split == "ood"], 30, 1)[["qid", "subgroup_id"]]
    refs, prov, notes = audit.reference_runs(keys, all_pairs, res)
    assert set(refs) == set(audit.REFERENCE_RUNS) and not notes
    part = audit.reference_summary("base_ood", refs["base_ood"], res, n_boot=20, seed=0)
    acc = part[(part.subset == "all") & (part.metric == "accuracy")].iloc[0]
    assert acc.pairs == 30 and acc.estimate == refs["base_ood"].correct.mean()
    assert prov["base_ood"]["predictions_sha256"] and prov["sft_ood"]["adapter"]
    unknown = pd.concat([keys, pd.DataFrame({"qid": ["Q_none"], "subgroup_id": ["sex=Nobody"]})], ignore_index=True)
    refs, _, notes = audit.reference_runs(unknown, all_pairs, res)
    assert not refs and len(notes) == len(audit.REFERENCE_RUNS) and "lack some of the audited pairs" in notes[0]


def test_make_audit_runs_the_command_with_the_given_options_and_needs_a_model(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WVS_FILE")}

    def make(*args):
        return subprocess.run(["make", "--no-print-directory", f"BUILD={tmp_path}", "WVS_CHECK=", *args], cwd=REPO,
                              capture_output=True, text=True, env=env, timeout=300)

    r = make("-n", "audit", "MODEL=models/tiny-random", "LIMIT=7", "ADAPTER=some/adapter", "AUDIT_OUT=/tmp/a b",
             "BASE_URL=http://127.0.0.1:8000/v1", "AUDIT_ARGS=--n-boot 50")
    assert r.returncode == 0, r.stderr
    line = " ".join(r.stdout.replace("\\\n", " ").split())
    for part in ('-m subgroup_values.pipeline.cli audit --model "models/tiny-random"', '--adapter "some/adapter"', "--limit 7",
                 '--out "/tmp/a b"', '--backend openai_compat --base-url "http://127.0.0.1:8000/v1"', "--n-boot 50"):
        assert part in line, (part, line)
    assert "--wvs-file" not in line  # no survey file given: no disjoint protocol
    assert "--wvs-file \"/x.csv\"" in " ".join(make("-n", "audit", "MODEL=m", "WVS_FILE=/x.csv").stdout.split())
    r = make("audit")
    assert r.returncode != 0 and "make audit needs MODEL=" in r.stdout + r.stderr


def test_a_contrast_outside_the_holm_family_is_a_claim_without_a_p_value():
    """On a sample (make audit LIMIT=200) a contrast may have too few questions to reach alpha by sign flips: it is
    outside the Holm family (no adjusted p). Its claim shows the unadjusted interval for the size and no p-value,
    instead of stopping the audit at the end with a NaN p-value."""
    import numpy as np
    import pandas as pd


    base = dict(split="ood", matching="all subgroups", metric="accuracy", testable=True, note="", rule="r",
                disagreement="", difference=0.05, interval="BCa", questions=3, favoured="Young",
                disfavoured="Elderly", paper="young favoured")
    rows = pd.DataFrame([
        base | dict(contrast="Young vs Elderly", lo=-0.1, hi=0.2, level=0.95, p_holm=np.nan, in_family=False,
                    verdict="cannot reject on 3 questions"),
        base | dict(contrast="Male vs Female", lo=0.01, hi=0.09, level=0.975, p_holm=0.02, in_family=True,
                    verdict="the paper's direction", questions=40),
    ])
    out = {c.id: c for c in audit.bias_claims(rows, "the model")}
    young = out["audit.bias.young_vs_elderly.accuracy"]
    assert young.p_value is None and young.verdict == "cannot reject on 3 questions"
    assert "outside the Holm family" in young.sentence and "nan" not in young.sentence.lower()
    male = out["audit.bias.male_vs_female.accuracy"]
    assert male.p_value == 0.02 and "Holm-adjusted permutation p = 0.020" in male.sentence
