"""The problem set a config names, split into the prover's half, the verifier's half and a test set."""

from __future__ import annotations

from pvg.config import DataConfig
from pvg.data.gsm8k_flaws import with_planted_flaws
from pvg.data.problems import Problem, Side, load_hub, load_jsonl, split_problems
from pvg.data.synth import generate


def load_problems(cfg: DataConfig, seed: int) -> list[Problem]:
    if cfg.source == "synthetic":
        return generate(
            cfg.num_problems,
            seed=seed,
            min_steps=cfg.min_steps,
            max_steps=cfg.max_steps,
            max_start=cfg.max_start,
            flaws_per_problem=cfg.flaws_per_problem,
            flaw_kinds=cfg.flaw_kinds,
            fixed_steps=cfg.fixed_steps,
            max_operand=cfg.max_operand,
            max_value=cfg.max_value,
        )
    if cfg.source == "jsonl":
        return load_jsonl(cfg.path)
    return load_hub(cfg.hub_name, cfg.hub_config, cfg.hub_split)


def load_split(cfg: DataConfig, seed: int) -> dict[Side, list[Problem]]:
    return split_problems(load_problems(cfg, seed), cfg.split.prover, cfg.split.verifier)


def with_flaws(problems: list[Problem], cfg: DataConfig, seed: int) -> list[Problem]:
    """GSM8K problems (jsonl, hub) with flaws planted in their own annotated solutions, as synthetic
    problems are generated with them: for the sneaky warm start of a hub prover and for previews.
    Not part of loading, since most runs never read them and planting costs a few ms a problem."""
    if cfg.source == "synthetic":
        return problems
    return with_planted_flaws(problems, cfg.flaw_kinds, cfg.flaws_per_problem, seed, cfg.fixed_steps)
