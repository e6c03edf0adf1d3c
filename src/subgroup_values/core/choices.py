"""The study's vocabularies of choices, in one place: the splits, scorings, prompt templates, backends, losses,
trainers and judge modes that every module, the command line and the runner check a value against."""

from __future__ import annotations

from typing import Literal, get_args

Split = Literal["train", "ood"]
Scoring = Literal["logprob", "generate"]
Template = Literal["persona_user", "persona_system", "no_persona", "marginals", "base_completion"]
BackendKind = Literal["hf", "openai_compat"]
Loss = Literal["modal", "distribution"]
Trainer = Literal["packed", "trl"]
JudgeMode = Literal["logprob", "generate"]

SPLITS: tuple[str, ...] = get_args(Split)
SCORINGS: tuple[str, ...] = get_args(Scoring)
TEMPLATES: tuple[str, ...] = get_args(Template)
BACKENDS: tuple[str, ...] = get_args(BackendKind)
LOSSES: tuple[str, ...] = get_args(Loss)
TRAINERS: tuple[str, ...] = get_args(Trainer)
JUDGE_MODES: tuple[str, ...] = get_args(JudgeMode)


def spoken(choices: tuple[str, ...]) -> str:
    """The choices as a message says them: "'train' or 'ood'", "one of 'hf', 'x', 'y'"."""
    quoted = [repr(c) for c in choices]
    return " or ".join(quoted) if len(quoted) <= 2 else "one of " + ", ".join(quoted)


def check(name: str, value, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``; else a ValueError that names the setting and what it may be."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value
