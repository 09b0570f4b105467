"""The whole run configuration, as one pydantic tree loaded from YAML.

One tree (rather than per-command flags) so that a laptop run and a cluster job are the same file,
and so the resolved config saved in a run folder is everything needed to reproduce it. Every model
forbids unknown keys: a typo in a YAML key must fail loudly, not silently fall back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pvg.errors import PvgError


class _Strict(BaseModel):
    # no field takes .inf or .nan: a rate, a step size or a time limit must be a finite number
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RunConfig(_Strict):
    name: str = Field("tiny", min_length=1, pattern=r"^[A-Za-z0-9._-]+$",
                      description="the run's folder name under out_dir (letters, digits, `.`, `_`, `-`)")
    seed: int = Field(0, ge=0, description="seeds everything: synthetic problems, model init, sampling, mixtures "
                                           "(each derived per round and phase)")
    out_dir: str = Field("runs", description="where run folders go: a path, or a URI (s3://bucket/runs, gs://...)")
    cache_dir: str = Field(".cache/pvg", description="where warm starts are cached, one folder per hash of what "
                                                     "determines them; an absolute shared path lets cluster jobs reuse them")
    lock_stale_s: float = Field(300, ge=10, description="a URI run folder's lock whose heartbeat is older than this "
                                "is a dead run's, taken over by the next `pvg train --resume`")


class SplitConfig(_Strict):
    prover: float = Field(0.45, gt=0, lt=1, description="share of problems on the prover's side (warm start, PPO), "
                                                         "chosen by a hash of each problem's id")
    verifier: float = Field(0.45, gt=0, lt=1, description="share of problems on the verifier's side (the pool it "
                                                           "trains on); the rest is the held-out test set")

    @model_validator(mode="after")
    def _leaves_a_test_set(self) -> "SplitConfig":
        if self.prover + self.verifier >= 1:
            raise ValueError("prover + verifier must be < 1 so that a test share remains")
        return self


FlawKind = Literal["arithmetic_slip", "wrong_operation", "misread_quantity", "dropped_step", "stale_value",
                   "miscopied_answer", "stale_operand"]


class DataConfig(_Strict):
    source: Literal["synthetic", "jsonl", "hub"] = Field(
        "synthetic", description="synthetic: generated here with planted flaws (what tiny models need); jsonl: a "
                                 "GSM8K-style file at `path`; hub: a data set with GSM8K's columns via `datasets`")
    path: str | None = Field(None, description="with source jsonl: the JSONL file (`question`, `answer` ending "
                                               "in `#### N`)")
    hub_name: str | None = Field(None, description="with source hub: the data set's name, e.g. openai/gsm8k")
    hub_config: str | None = Field("main", description="with source hub: the data set's config name (null for none)")
    hub_split: str = Field("train", description="with source hub: which split to load")
    num_problems: int = Field(20000, ge=10, description="how many distinct synthetic problems to generate, "
                                                        "before the split")
    min_steps: int = Field(2, ge=2, le=6, description="fewest steps of a synthetic problem (each problem's count "
                                                      "drawn uniformly from min_steps..max_steps)")
    max_steps: int = Field(4, ge=2, le=6, description="most steps of a synthetic problem")
    max_start: int = Field(30, ge=2, le=10_000, description="largest starting quantity of a synthetic problem")
    max_operand: int = Field(20, ge=2, le=10_000, description="largest number added or taken away in one step")
    max_value: int = Field(200, ge=10, le=9_999, description="largest running value a multiplication may reach")
    flaws_per_problem: int = Field(2, ge=1, le=8, description="planted-flaw solutions per synthetic problem "
                                                              "(fewer only where no more distinct ones exist), the kinds "
                                                              "taken in turn")
    flaw_kinds: list[FlawKind] = Field(
        default_factory=lambda: ["arithmetic_slip", "wrong_operation", "misread_quantity", "dropped_step", "stale_value"],
        min_length=1,
        description="the planted flaws of synthetic problems (the sneaky warm start's examples and the verifier's "
                    "judging ones): a wrong step recomputed honestly after it; or, opt-in, `miscopied_answer`: every "
                    "line right and the final `#### N` not the last result, and `stale_operand`: stale_value's wider "
                    "family (an earlier result's own operand in its place, on either side)",
    )
    first_step_kinds: list[FlawKind] = Field(
        default_factory=list,
        description="flaw kinds planted at the first step they fit, not a random one (each one of flaw_kinds): a tiny "
                    "sneaky prover taught a once-only flaw that may go at any of several steps often writes none",
    )
    last_step_kinds: list[FlawKind] = Field(
        default_factory=list,
        description="flaw kinds planted at the last step they fit, not a random one (each one of flaw_kinds, none "
                    "of first_step_kinds): one place to plant, as first_step_kinds, and late in the solution",
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="how problems divide into the prover's "
                                                                        "side, the verifier's side and the test set")

    @property
    def fixed_steps(self) -> dict[str, str]:
        """The planters' one view of both lists: kind -> the end it is planted nearest."""
        return {k: "first" for k in self.first_step_kinds} | {k: "last" for k in self.last_step_kinds}

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must be <= max_steps ({self.max_steps})")
        for name in ("first_step_kinds", "last_step_kinds"):
            if stray := [k for k in getattr(self, name) if k not in self.flaw_kinds]:
                raise ValueError(f"{name} names {', '.join(stray)}, not among flaw_kinds ({', '.join(self.flaw_kinds)})")
        if both := [k for k in self.last_step_kinds if k in self.first_step_kinds]:
            raise ValueError(f"{', '.join(both)} is in both first_step_kinds and last_step_kinds; a kind goes at one of them")
        if self.source == "jsonl" and not self.path:
            raise ValueError("source 'jsonl' needs data.path (a GSM8K-style JSONL file)")
        if self.source == "hub" and not self.hub_name:
            raise ValueError("source 'hub' needs data.hub_name (e.g. openai/gsm8k)")
        return self


class TinyModelConfig(_Strict):
    hidden_size: int = Field(128, ge=8, description="the tiny Llama's width; a multiple of num_heads")
    num_layers: int = Field(4, ge=1, description="the tiny Llama's transformer layers")
    num_heads: int = Field(4, ge=1, description="attention heads per layer (as many key-value heads)")
    intermediate_size: int = Field(512, ge=8, description="the MLP's inner width")
    max_positions: int = Field(256, ge=16, description="the longest sequence in tokens the model has positions for; "
                                                       "the prover's warm-start examples are cut to it")

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        return self


class ProverTinyConfig(TinyModelConfig):
    intermediate_size: int = Field(256, ge=8, description="the MLP's inner width")


class VerifierTinyConfig(TinyModelConfig):
    """Several times smaller than the prover: the paper's verifier is the weaker party."""

    hidden_size: int = Field(64, ge=8, description="the tiny Llama's width; a multiple of num_heads")
    num_layers: int = Field(2, ge=1, description="the tiny Llama's transformer layers")
    intermediate_size: int = Field(128, ge=8, description="the MLP's inner width")
    numbers: Literal["digits", "whole"] = Field(
        "digits", description="how the tiny verifier's own tokenizer splits numbers: `digits` (the prover's "
                              "tokenizer) or `whole` (each number of the corpus one token; see pvg.data.tokenizer)")


class ModelConfig(_Strict):
    """A hub id / local path (real `from_pretrained`), or None to build a tiny model from `tiny`."""

    model: str | None = Field(None, description="a hub id or local path, taken as it is (no warm start); null: a "
                                                "tiny model built from `tiny` and warm-started")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig,
                                  description="the tiny model's shape, used only when model is null")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="the dtype the game's actors load the weights in (a prover trained by DeepSpeed "
                               "loads float32 and follows deepspeed.precision)")


class LoraSettings(_Strict):
    """A LoRA adapter on the prover (pvg/game/lora.py): the frozen reference is the base with it off."""

    r: int = Field(16, ge=1, description="the adapter's rank")
    alpha: float = Field(32, gt=0, description="LoRA's scale numerator: the update is (alpha / r) B A")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input; 0 keeps PPO's old and new "
                                                        "log-probs of an unchanged policy equal")
    target_modules: list[str] = Field(["all-linear"], min_length=1,
                                      description="module names the adapter wraps (peft's target_modules), or "
                                                  "[all-linear]: every linear layer but the output head")


class ProverConfig(ModelConfig):
    tiny: ProverTinyConfig = Field(default_factory=ProverTinyConfig,
                                   description="the tiny prover's shape, used only when model is null")
    max_new_tokens: int = Field(72, ge=4, description="most tokens sampled per solution")
    temperature: float = Field(1.0, gt=0, description="sampling temperature; PPO's log-probs use the same one")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling's probability mass (1 = off; top_k is "
                                                      "always off)")
    calculator: bool = Field(
        False, description="write the result of every `a op b =` while sampling (pvg.game.calculator), as GSM8K's "
                           "own solutions were sampled; the prover then errs only in its reasoning")
    calculator_answer: bool = Field(
        True, description="with `calculator`, also write the final answer after `####`: the last result computed "
                          "(a tiny verifier barely learns to check that copy; see pvg/game/calculator.py)")
    lora: LoraSettings | None = Field(
        None, description="train a fresh LoRA adapter each prover phase instead of every weight (peft); the KL "
                          "reference is the base with the adapter off, no second copy; checkpoints hold the merged "
                          "model and the adapter in adapter/. null: full fine-tuning")


class VerifierConfig(ModelConfig):
    tiny: VerifierTinyConfig = Field(default_factory=VerifierTinyConfig,
                                     description="the tiny verifier's shape, used only when model is null")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the verifier's training (also its warm-start "
                                              "judging)")
    train_steps: int = Field(300, ge=1, description="optimizer steps per verifier phase (from fresh weights every "
                                                    "round); the least, with train_epochs set")
    train_epochs: float | None = Field(
        None, gt=0, description="at least this many passes over the phase's pairs: it takes max(train_steps, "
                                "ceil(train_epochs * pairs / batch_pairs)) steps, so the growing pool is still "
                                "fitted in late rounds; null: train_steps, whatever the pool size")
    batch_pairs: int = Field(32, ge=1, description="(correct, incorrect) pairs per step of the Bradley-Terry loss")
    center_coef: float = Field(0.01, ge=0, description="weight of the squared sum of each pair's scores in the loss, "
                                                       "keeping scores centred on 0")
    solutions_per_problem: int = Field(4, ge=2, description="per problem and round, balanced correct/incorrect")
    mixture: Literal["equal", "proportional"] = Field(
        "equal", description="how pool sources (the initial prover and each earlier round) are weighted when "
                             "drawing pairs: equal shares, or in proportion to their size")
    max_length: int = Field(160, ge=16, description="tokens a verifier input (question and solution) is cut to, "
                                                    "in training and scoring")
    threshold: Literal["helpful_median", "zero"] = Field(
        "helpful_median", description="the acceptance threshold of the round metrics: the median score of helpful "
                                      "correct eval solutions (the paper's), or 0")


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
    batch_size: int = Field(64, ge=1, description="examples per step of the warm start's supervised and "
                                                  "language-model training")
    verifier_pretrain_batch_size: int | None = Field(
        None, ge=1, description="solutions per step of the verifier's judging; default: batch_size")
    lr: float = Field(3e-3, gt=0, description="peak learning rate of the prover's and the verifier base's warm start")
    eval_problems: int = Field(200, ge=1, description="held-out test problems the warm-started models are measured on")
    verifier_flaw_kinds: list[FlawKind] | None = Field(
        None, description="planted-flaw kinds the verifier's warm start sees (default: all of data.flaw_kinds); a "
                          "kind left out is one the sneaky role learns but the round-0 verifier never saw")
    sneaky_flaw_kinds: list[FlawKind] | None = Field(
        None, description="planted-flaw kinds the sneaky role's warm start is taught (default: all of "
                          "data.flaw_kinds); a problem with none of them is taught one of its other flaws")
    sneaky_fraction: float = Field(0.5, ge=0, le=1, description="chance that a problem gives the prover's warm "
                                                                "start a sneaky (planted-flaw) example, and, drawn "
                                                                "apart, 1 minus it a helpful one")
    hub_prover_steps: int = Field(
        0, ge=0, description="with prover.model set: steps of TRL SFTTrainer on both roles before the game (helpful → "
                             "the reference, sneaky → a flaw planted in it, pvg.data.gsm8k_flaws), in the model's chat "
                             "format; 0 = the hub prover is taken as it is")
    hub_lr: float = Field(1e-5, gt=0, description="with hub_prover_steps: the SFT's peak learning rate (cosine "
                                                  "decay after prover_warmup_steps)")
    hub_batch_size: int = Field(8, ge=1, description="with hub_prover_steps: conversations per SFT step")

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
    problems_per_step: int = Field(16, ge=1, description="prover-side problems drawn per PPO update (each sampled "
                                                         "in both roles)")
    samples_per_problem: int = Field(4, ge=2, description="b: samples per problem and role")
    reward: Literal["src", "src_ordered", "cgc", "goodhart", "correctness"] = Field(
        "src", description="src: signed relative convincingness (the paper's); src_ordered: src with every "
                           "role-misaligned solution at or below -1, below every aligned one; cgc: correctness-gated "
                           "convincingness; goodhart: the plain verifier score, role ignored; correctness: 1 for a "
                           "correct answer, no verifier, helpful role only (the paper's baseline); pvg/game/rewards.py")
    cgc_v0: float | None = Field(
        None, description="with reward cgc: a fixed reward for a solution whose correctness does not match its "
                          "role; default (none): cgc_margin below the batch's lowest verifier score, so it is "
                          "always below every score")
    cgc_margin: float = Field(1.0, gt=0, description="with reward cgc and no cgc_v0: how far below the batch's "
                                                     "lowest verifier score the gate V0 sits")
    advantage: Literal["gae", "group"] = Field(
        "gae", description="gae: token-level GAE with the value head; group: critic-free, each reward minus the "
                           "mean of the other samples of its (problem, role) (RLOO), every token its return-to-go")
    epochs: int = Field(2, ge=1, description="passes over each PPO batch per update")
    minibatch_size: int = Field(32, ge=1, description="episodes per optimizer step, all prover actors together")
    grad_accum: int = Field(1, ge=1, description="micro-batches each actor splits its minibatch share into")
    lr: float = Field(1e-4, gt=0, description="the policy's AdamW learning rate")
    critic_lr: float = Field(1e-3, gt=0, description="the value head's AdamW learning rate")
    clip_range: float = Field(0.2, gt=0, description="PPO's clip on the probability ratio: 1 ± this")
    value_clip_range: float = Field(0.2, gt=0, description="how far a value may move from its old estimate before "
                                                           "its loss is clipped")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss beside the policy loss")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE's discount per token")
    lam: float = Field(0.95, ge=0, le=1, description="GAE's lambda")
    kl_coef: float = Field(0.02, ge=0, description="weight of the KL penalty to the initial prover")
    sneaky_kl_coef: float | None = Field(
        None, ge=0, description="the KL weight on sneaky episodes; default (none): kl_coef. Lower lets the sneaky role "
                                "search for the verifier's blind spots while the helpful role stays anchored")
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k1", description="per-token KL estimator (Schulman's): k1 = log r, k2 = (log r)^2/2, k3 = r' - 1 - log r'")
    kl_in: Literal["reward", "loss"] = Field(
        "reward", description="where the KL penalty goes: subtracted from every token's reward, or added to the loss")
    whiten_advantages: bool = Field(True, description="normalize advantages to mean 0, variance 1 over the whole "
                                                      "batch (all actors)")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient norm clip of each optimizer step")
    exploit_incorrect_rate: float = Field(
        0.95, gt=0, le=1, description="a PPO step's batch is an exploit when at least this share of its sneaky "
                                      "samples states a wrong answer and those ones' mean score reaches the "
                                      "helpful correct ones' (pvg/game/exploit.py)")
    exploit_window: int = Field(
        4, ge=1, description="PPO batches pooled by the exploit test (the last this many, together): one batch's "
                             "mean score is too noisy to tell a learned exploit from a lucky draw; the earliest "
                             "exploit is then after exploit_window - 1 updates")
    exploit_confirm_problems: int = Field(
        128, ge=0, description="when the window's test passes, the rule must also hold on a fresh batch of this many "
                               "problems (samples_per_problem each, per role), drawn by the same policy, before the "
                               "phase counts as exploited: a 64-problem window passes by luck; 0: the window decides")


class GameConfig(_Strict):
    max_rounds: int = Field(4, ge=1, description="the round limit: the game ends after this many rounds whatever "
                                                 "the stop rule (`pvg train --resume --set` may change it to play on)")
    min_rounds: int = Field(
        2, ge=1, description="rounds played before the stop rule may end the game (the round limit always applies): "
                             "round 0's verifier has seen only the initial prover's solutions, so whether training on "
                             "a PPO-trained prover's solutions makes it harder to fool shows from round 1 on")
    fool_rate_bar: float = Field(0.1, ge=0, le=1, description="the stop rule's bar on the sneaky fool rate: the "
                                                              "share of incorrect sneaky eval solutions the verifier "
                                                              "accepts")
    stop_rule: Literal["no_exploit_and_fool_rate", "fool_rate", "max_rounds"] = Field(
        "no_exploit_and_fool_rate", description="when the game ends early: no exploit within ppo.max_steps and a "
                                                "fool rate under the bar (the paper's); the bar alone; or never "
                                                "(max_rounds)")
    pool_problems_per_round: int = Field(300, ge=2, description="verifier-half problems sampled into the pool each round")
    pool_samples_per_role: int = Field(2, ge=1, description="solutions per problem and role added to the pool")
    initial_pool_roles: list[Literal["helpful", "sneaky"]] = Field(
        ["helpful", "sneaky"], min_length=1,
        description="the roles the initial pool (round 0's verifier's training data) is sampled in; [helpful]: "
                    "the initial prover's honest attempts only, so the sneaky role's warm-start repertoire is "
                    "not shown to round 0's verifier")
    eval_problems: int = Field(200, ge=2, description="held-out test problems for the round metrics")
    prover_start: Literal["warm_start", "last_round"] = Field(
        "warm_start", description="where each round's prover phase starts: warm_start (the game: every round from "
                                  "the initial prover); last_round: from the previous round's trained prover (fresh "
                                  "optimizer and value head, KL still to the initial prover), so the rounds are "
                                  "stretches of one run, as the paper trains its correctness-only baseline")


class GroupResources(_Strict):
    actors: int = Field(1, ge=1, description="Ray actors of the group; each samples or scores a shard of every "
                                             "batch (several prover actors train data-parallel through DeepSpeed)")
    cpus_per_actor: float = Field(1, ge=0, description="CPUs Ray reserves for each actor")
    gpus_per_actor: float = Field(0, ge=0, description="GPUs Ray reserves for each actor; a fraction shares one")
    torch_threads: int | None = Field(
        None, ge=1, description="torch's threads in each actor; default: cpus_per_actor. On one machine more can pay: "
                                "the groups take turns (verifier phase, then prover phase), so each phase may use "
                                "the cores Ray reserved for the other")


class ResourcesConfig(_Strict):
    prover: GroupResources = Field(default_factory=GroupResources, description="the prover group's actors")
    verifier: GroupResources = Field(default_factory=GroupResources, description="the verifier group's actors (rank "
                                                                                 "0 trains, every rank scores)")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="Ray's placement-group strategy for each group's bundles (one bundle per actor)")
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
    tensorboard: bool = Field(True, description="write TensorBoard scalars under the run folder's tb/")
    wandb: bool = Field(False, description="also log to Weights & Biases (project pvg; needs pip install 'pvg[wandb]')")
    progress: bool = Field(True, description="show progress bars")


class PvgConfig(_Strict):
    run: RunConfig = Field(default_factory=RunConfig, description="naming, seeding and where runs and caches go")
    data: DataConfig = Field(default_factory=DataConfig, description="the problems and their split")
    prover: ProverConfig = Field(default_factory=ProverConfig, description="the prover model and how it samples")
    verifier: VerifierConfig = Field(default_factory=VerifierConfig, description="the verifier model and its "
                                                                                 "training each round")
    warmstart: WarmstartConfig = Field(default_factory=WarmstartConfig, description="the tiny models' training "
                                                                                    "before the game")
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="the prover phase: PPO against the round's verifier")
    game: GameConfig = Field(default_factory=GameConfig, description="rounds, the pool and when the game stops")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="Ray actors and what each "
                                                                                    "reserves")
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig, description="how the prover group trains")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="where metrics are reported")

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

    @model_validator(mode="after")
    def _lora_outside_zero3(self) -> "PvgConfig":
        """The adapter-off reference runs the policy's own weights outside the DeepSpeed engine, which
        ZeRO-3 has split across ranks."""
        if self.prover.lora is not None and self.deepspeed.zero_stage == 3 and (
                self.deepspeed.use == "always" or self.resources.prover.actors > 1
                or self.resources.prover.gpus_per_actor > 0):
            raise ValueError("prover.lora needs deepspeed.zero_stage <= 2 (its reference is the policy with the adapter "
                             "off, run outside the ZeRO-3 engine); a LoRA prover's optimizer state is small anyway")
        return self

    @model_validator(mode="after")
    def _continues_without_lora(self) -> "PvgConfig":
        """A LoRA prover's reference is its base with the adapter off; continued from a merged checkpoint,
        that base would be last round's prover, not the initial one."""
        if self.game.prover_start == "last_round" and self.prover.lora is not None:
            raise ValueError("game.prover_start=last_round does not work with prover.lora (the KL reference would "
                             "become the previous round's prover); use warm_start, or drop prover.lora")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def config_models(root: type[BaseModel] = PvgConfig) -> list[type[BaseModel]]:
    """Every model class reachable from `root` through its fields' annotations (inside Optional, Union,
    list, dict, ... too), `root` first, each once."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    visit(root)
    return found


def undocumented(root: type[BaseModel] = PvgConfig) -> list[str]:
    """`Model.field` for each field of the config tree with no (or a blank) description."""
    return [f"{m.__name__}.{name}" for m in config_models(root) for name, f in m.model_fields.items()
            if not (f.description or "").strip()]


def describe(cfg: BaseModel, prefix: str = "") -> list[tuple[str, Any, str]]:
    """One `(dotted.key, value, description)` per leaf field of a resolved config, in field order;
    values as the saved config.yaml has them (`model_dump(mode="json")`). A dict or list of models
    (none today) gives a key per entry: `section.field.name.leaf`, `section.field.0.leaf`."""
    dumped = cfg.model_dump(mode="json")
    rows: list[tuple[str, Any, str]] = []

    def walk(value: Any, plain: Any, key: str, description: str) -> None:
        if isinstance(value, BaseModel):
            rows.extend(describe(value, key + "."))
        elif isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
            for k, v in value.items():
                walk(v, plain[k], f"{key}.{k}", description)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, BaseModel) for v in value):
            for i, v in enumerate(value):
                walk(v, plain[i], f"{key}.{i}", description)
        else:
            rows.append((key, plain, description))

    for name, field in type(cfg).model_fields.items():
        walk(getattr(cfg, name), dumped[name], prefix + name, field.description or "")
    return rows


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


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (line and column, 1-based)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}{f' ({context})' if context else ''}".split())


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping (`ppo:` twice) is an error: plain YAML
    keeps the last one and silently drops the first, with everything under it."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys given after it override it
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base loader says so
                continue
            if first is not None:
                raise _DuplicateKey(f"the key {key!r} is given twice (lines {first + 1} and "
                                    f"{key_node.start_mark.line + 1}); YAML would keep only the second and drop "
                                    "the first with everything under it: merge them into one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PvgConfig:
    """Read YAML, apply `--set` overrides, validate; every failure is a ConfigError naming the key."""
    tree: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if p.is_dir():
            raise ConfigError(f"config {p} is a directory; give a YAML file, e.g. configs/tiny.yaml")
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config {p} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
        except OSError as e:
            raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
        try:
            loaded = yaml.load(text, Loader=_UniqueKeyLoader)
        except _DuplicateKey as e:
            raise ConfigError(f"config {p}: {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config {p} is not valid YAML: {_yaml_problem(e)}") from None
        if loaded is None:
            raise ConfigError(f"config {p} is empty; give the sections to set (see configs/tiny.yaml), or write {{}} "
                              "in it to take every default")
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
