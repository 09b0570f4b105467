"""The whole run configuration, as one pydantic tree loaded from YAML.

One tree (rather than per-command flags) so that a laptop run and a cluster job are the same file,
and so the resolved config saved in a run folder is everything needed to reproduce it. Every model
forbids unknown keys: a typo in a YAML key must fail loudly, not silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pvg.errors import PvgError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(_Strict):
    name: str = Field("tiny", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    seed: int = Field(0, ge=0)
    out_dir: str = Field("runs", description="where run folders go: a path, or a URI (s3://bucket/runs, gs://...)")
    cache_dir: str = ".cache/pvg"
    lock_stale_s: float = Field(300, ge=10, description="a URI run folder's lock whose heartbeat is older than this "
                                "is a dead run's, taken over by the next `pvg train --resume`")


class SplitConfig(_Strict):
    prover: float = Field(0.45, gt=0, lt=1)
    verifier: float = Field(0.45, gt=0, lt=1)

    @model_validator(mode="after")
    def _leaves_a_test_set(self) -> "SplitConfig":
        if self.prover + self.verifier >= 1:
            raise ValueError("prover + verifier must be < 1 so that a test share remains")
        return self


FlawKind = Literal["arithmetic_slip", "wrong_operation", "misread_quantity", "dropped_step", "stale_value",
                   "miscopied_answer"]


class DataConfig(_Strict):
    source: Literal["synthetic", "jsonl", "hub"] = "synthetic"
    path: str | None = None
    hub_name: str | None = None
    hub_config: str | None = "main"
    hub_split: str = "train"
    num_problems: int = Field(20000, ge=10)
    min_steps: int = Field(2, ge=2, le=6)
    max_steps: int = Field(4, ge=2, le=6)
    max_start: int = Field(30, ge=2, le=10_000)
    max_operand: int = Field(20, ge=2, le=10_000, description="largest number added or taken away in one step")
    max_value: int = Field(200, ge=10, le=9_999, description="largest running value a multiplication may reach")
    flaws_per_problem: int = Field(2, ge=1, le=8)
    flaw_kinds: list[FlawKind] = Field(
        default_factory=lambda: ["arithmetic_slip", "wrong_operation", "misread_quantity", "dropped_step", "stale_value"],
        min_length=1,
        description="the planted flaws of synthetic problems (the sneaky warm start's examples and the verifier's "
                    "judging ones): a wrong step recomputed honestly after it; or, opt-in, `miscopied_answer`: every "
                    "line right and the final `#### N` not the last result",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must be <= max_steps ({self.max_steps})")
        if self.source == "jsonl" and not self.path:
            raise ValueError("source 'jsonl' needs data.path (a GSM8K-style JSONL file)")
        if self.source == "hub" and not self.hub_name:
            raise ValueError("source 'hub' needs data.hub_name (e.g. openai/gsm8k)")
        return self


class TinyModelConfig(_Strict):
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    max_positions: int = Field(256, ge=16)

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        return self


class ProverTinyConfig(TinyModelConfig):
    intermediate_size: int = Field(256, ge=8)


class VerifierTinyConfig(TinyModelConfig):
    """Several times smaller than the prover: the paper's verifier is the weaker party."""

    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    intermediate_size: int = Field(128, ge=8)
    numbers: Literal["digits", "whole"] = Field(
        "digits", description="how the tiny verifier's own tokenizer splits numbers: `digits` (the prover's "
                              "tokenizer) or `whole` (each number of the corpus one token; see pvg.data.tokenizer)")


class ModelConfig(_Strict):
    """A hub id / local path (real `from_pretrained`), or None to build a tiny model from `tiny`."""

    model: str | None = None
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class ProverConfig(ModelConfig):
    tiny: ProverTinyConfig = Field(default_factory=ProverTinyConfig)
    max_new_tokens: int = Field(72, ge=4)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    calculator: bool = Field(
        False, description="write the result of every `a op b =` while sampling (pvg.game.calculator), as GSM8K's "
                           "own solutions were sampled; the prover then errs only in its reasoning")
    calculator_answer: bool = Field(
        True, description="with `calculator`, also write the final answer after `####`: the last result computed "
                          "(a tiny verifier barely learns to check that copy; see pvg/game/calculator.py)")


class VerifierConfig(ModelConfig):
    tiny: VerifierTinyConfig = Field(default_factory=VerifierTinyConfig)
    lr: float = Field(1e-3, gt=0)
    train_steps: int = Field(300, ge=1)
    batch_pairs: int = Field(32, ge=1)
    center_coef: float = Field(0.01, ge=0)
    solutions_per_problem: int = Field(4, ge=2, description="per problem and round, balanced correct/incorrect")
    mixture: Literal["equal", "proportional"] = "equal"
    max_length: int = Field(160, ge=16)
    threshold: Literal["helpful_median", "zero"] = "helpful_median"


class WarmstartConfig(_Strict):
    prover_steps: int = Field(800, ge=1, description="supervised steps of the tiny prover on both roles' solutions")
    prover_warmup_steps: int = Field(30, ge=0, description="the prover's linear learning-rate warm-up")
    verifier_steps: int = Field(300, ge=1, description="language-model steps of the tiny verifier's base")
    verifier_warmup_steps: int = Field(30, ge=0, description="the verifier base's linear learning-rate warm-up")
    verifier_pretrain_steps: int = Field(
        0, ge=0, description="then train the verifier base to judge the prover's half's reference and planted-flaw "
                             "solutions; 0 = off (the base is a language model only)")
    verifier_pretrain_labels: Literal["tokens", "pairs"] = Field(
        "pairs", description="tokens: a label on every solution token (right until the first departure from the "
                             "reference); pairs: Bradley-Terry on (reference, planted flaw) pairs, outcome only")
    batch_size: int = Field(64, ge=1)
    verifier_pretrain_batch_size: int | None = Field(
        None, ge=1, description="solutions per step of the verifier's judging; default: batch_size")
    lr: float = Field(3e-3, gt=0)
    eval_problems: int = Field(200, ge=1)
    sneaky_fraction: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _one_warmup_for_both(cls, data: Any) -> Any:
        """`warmup_steps` (one warm-up for both models, before the two keys) still reads: run folders
        written then keep resuming and loading."""
        if isinstance(data, dict) and "warmup_steps" in data:
            data = dict(data)
            both = data.pop("warmup_steps")
            data.setdefault("prover_warmup_steps", both)
            data.setdefault("verifier_warmup_steps", both)
        return data


class PPOConfig(_Strict):
    max_steps: int = Field(30, ge=1, description="PPO updates per prover phase (the exploit step limit)")
    problems_per_step: int = Field(16, ge=1)
    samples_per_problem: int = Field(4, ge=2, description="b: samples per problem and role")
    reward: Literal["src", "cgc", "goodhart"] = "src"
    cgc_v0: float = -2.0
    epochs: int = Field(2, ge=1)
    minibatch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    clip_range: float = Field(0.2, gt=0)
    value_clip_range: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.5, ge=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    kl_coef: float = Field(0.02, ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    kl_in: Literal["reward", "loss"] = "reward"
    whiten_advantages: bool = True
    max_grad_norm: float = Field(1.0, gt=0)
    exploit_incorrect_rate: float = Field(0.95, gt=0, le=1)


class GameConfig(_Strict):
    max_rounds: int = Field(4, ge=1)
    min_rounds: int = Field(
        2, ge=1, description="rounds played before the stop rule may end the game (the round limit always applies): "
                             "round 0's verifier has seen only the initial prover's solutions, so whether training on "
                             "a PPO-trained prover's solutions makes it harder to fool shows from round 1 on")
    fool_rate_bar: float = Field(0.1, ge=0, le=1)
    stop_rule: Literal["no_exploit_and_fool_rate", "fool_rate", "max_rounds"] = "no_exploit_and_fool_rate"
    pool_problems_per_round: int = Field(300, ge=2, description="verifier-half problems sampled into the pool each round")
    pool_samples_per_role: int = Field(2, ge=1, description="solutions per problem and role added to the pool")
    eval_problems: int = Field(200, ge=2, description="held-out test problems for the round metrics")


class GroupResources(_Strict):
    actors: int = Field(1, ge=1)
    cpus_per_actor: float = Field(1, ge=0)
    gpus_per_actor: float = Field(0, ge=0)
    torch_threads: int | None = Field(
        None, ge=1, description="torch's threads in each actor; default: cpus_per_actor. On one machine more can pay: "
                                "the groups take turns (verifier phase, then prover phase), so each phase may use "
                                "the cores Ray reserved for the other")


class ResourcesConfig(_Strict):
    prover: GroupResources = Field(default_factory=GroupResources)
    verifier: GroupResources = Field(default_factory=GroupResources)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    colocate: bool = Field(
        False, description="put verifier actor i in prover actor i's bundle: the two share its GPU (half each, "
                           "the same device) since their phases alternate; needs gpus_per_actor <= 1 and "
                           "verifier.actors <= prover.actors")
    precheck: bool = Field(
        True, description="refuse at once a config the cluster's nodes cannot hold; turn off on an autoscaling "
                          "cluster, where placement then waits placement_timeout_s for new nodes")
    placement_timeout_s: float = Field(60, gt=0, description="how long to wait for the placement groups")

    @model_validator(mode="after")
    def _colocatable(self) -> "ResourcesConfig":
        if self.colocate:
            for name in ("prover", "verifier"):
                g = getattr(self, name).gpus_per_actor
                if g > 1:
                    raise ValueError(f"colocate shares one GPU per bundle: {name}.gpus_per_actor must be <= 1 (got {g:g})")
            if self.verifier.actors > self.prover.actors:
                raise ValueError(f"colocate puts each verifier actor beside a prover actor: verifier.actors "
                                 f"({self.verifier.actors}) must be <= prover.actors ({self.prover.actors})")
        return self


class DeepSpeedConfig(_Strict):
    """How the prover group trains: plain torch on one CPU actor, a DeepSpeed engine otherwise."""

    use: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: DeepSpeed when the prover group has several actors or GPUs, plain torch on one "
                            "CPU actor (the tiny default)")
    zero_stage: int = Field(2, ge=0, le=3, description="ZeRO stage across the prover actors (3 gathers the weights "
                                                        "for each sampling call)")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")


class LoggingConfig(_Strict):
    tensorboard: bool = True
    wandb: bool = False
    progress: bool = True


class PvgConfig(_Strict):
    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    prover: ProverConfig = Field(default_factory=ProverConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    warmstart: WarmstartConfig = Field(default_factory=WarmstartConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    game: GameConfig = Field(default_factory=GameConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _shards_evenly(self) -> "PvgConfig":
        """Several prover actors each take an equal shard of every PPO batch and an equal share of each
        minibatch; an uneven split would leave one rank waiting for a gradient all-reduce forever."""
        n = self.resources.prover.actors
        episodes = self.ppo.problems_per_step * 2 * self.ppo.samples_per_problem
        if n > 1:
            if self.deepspeed.use == "never":
                raise ValueError(f"resources.prover.actors={n} trains through DeepSpeed; deepspeed.use=never allows one actor")
            if episodes % n:
                raise ValueError(f"resources.prover.actors={n} must divide the PPO batch: ppo.problems_per_step x 2 roles "
                                 f"x ppo.samples_per_problem = {episodes} episodes")
            if self.ppo.minibatch_size % n:
                raise ValueError(f"resources.prover.actors={n} must divide ppo.minibatch_size ({self.ppo.minibatch_size})")
        local = min(self.ppo.minibatch_size, episodes) // n
        if self.ppo.grad_accum > local:
            raise ValueError(f"ppo.grad_accum ({self.ppo.grad_accum}) is more than the {local} episodes each prover "
                             "actor has per minibatch; lower it or raise ppo.minibatch_size")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ConfigError(PvgError):
    pass


def _format_errors(source: str, err: ValidationError, tree: dict) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = _model_at(e["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent else "?"
            lines.append(f"  {path}: unknown key (allowed here: {allowed})")
        else:
            got = _value_at(tree, e["loc"])
            got_s = f" (got {got!r})" if got is not _MISSING and not isinstance(got, dict) else ""
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {path or '<config>'}: {msg}{got_s}")
    return "\n".join(lines)


_MISSING = object()


def _value_at(tree: Any, loc: tuple) -> Any:
    for key in loc:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, list) and isinstance(key, int) and key < len(tree):
            tree = tree[key]
        else:
            return _MISSING
    return tree


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = PvgConfig
    for key in loc:
        field = model.model_fields.get(str(key))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value`, the value read as YAML so numbers, booleans, null and lists work."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set ppo.lr=1e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for item in overrides:
        parts, value = parse_override(item)
        node = tree
        model: type[BaseModel] | None = PvgConfig
        for depth, part in enumerate(parts[:-1]):
            if model is not None and part not in model.model_fields:
                raise ConfigError(
                    f"--set {item!r}: unknown key {'.'.join(parts[: depth + 1])} "
                    f"(allowed here: {', '.join(model.model_fields)})"
                )
            model = _model_at(tuple(parts[: depth + 1]))
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if model is not None and parts[-1] not in model.model_fields:
            raise ConfigError(
                f"--set {item!r}: unknown key {'.'.join(parts)} (allowed here: {', '.join(model.model_fields)})"
            )
        node[parts[-1]] = value
    return tree


# What `pvg train --resume RUN --set` may change: when the game ends, nothing a played round was made with.
RESUME_SETTABLE = ("game.max_rounds",)


def check_resume_keys(overrides: list[str]) -> None:
    """`--set` overrides for a resumed run: only `RESUME_SETTABLE` keys (checked by name, before any file is read)."""
    fixed = [k for k in (o.split("=", 1)[0].strip() for o in overrides) if k not in RESUME_SETTABLE]
    if fixed:
        raise ConfigError(f"--resume cannot change {', '.join(fixed)}: the run's earlier rounds were made with its "
                          f"config.yaml. With --resume, --set takes only {', '.join(RESUME_SETTABLE)}; for anything "
                          "else start a new run")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PvgConfig:
    """Read YAML, apply `--set` overrides, validate; every failure is a ConfigError naming the key."""
    tree: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"config {p} is not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {p}: the top level must be a mapping of sections (run, data, ...)")
        tree = loaded
    tree = apply_overrides(tree, list(overrides or []))
    if overrides:
        source += " with --set " + " ".join(overrides)
    try:
        return PvgConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e, tree)) from None
