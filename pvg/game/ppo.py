"""PPO for a language-model policy, written out (TRL 1.x ships no PPO trainer).

Names follow the PPO paper and cleanRL's `ppo.py`. One episode is one sampled solution; its
reward arrives on the last response token, a per-token KL penalty to the frozen initial prover is
added to the reward (or to the loss), token-level GAE turns that into advantages.

`advantage: group` is the critic-free alternative (RLOO's baseline): the caller centres each
episode's reward on the other samples of its (problem, role) group, and the advantage of a token
is its return-to-go (GAE with λ = 1 and no value), so the early tokens that decide which number or
operation a solution uses get the whole episode's credit, not a value head's guess rebuilt each round.

Value function: a small MLP head on the policy's *detached* last hidden states. One forward pass
gives logits and values (a separate critic model would double the compute, which is what the
two-core budget cannot afford), and detaching keeps value-loss gradients out of the policy's
weights, which is the usual reason to prefer a separate critic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- pure functions (unit-tested)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    white = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        white = white + mean
    return white * mask


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimators of Schulman's note: k1 = log r, k2 = (log r)^2/2, k3 = r' - 1 - log r'."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(-log_ratio) - 1 + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}")


def token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: "float | torch.Tensor"
) -> torch.Tensor:
    """-kl_coef·KL on every response token, plus the episode's score on its last response token.
    `kl_coef` is one weight, or one per episode (B,)."""
    if isinstance(kl_coef, torch.Tensor):
        kl_coef = kl_coef.to(kl.dtype).reshape(-1, 1)
    rewards = -kl_coef * kl * mask
    last = mask.cumsum(1).argmax(1)  # index of the last 1 in each row
    rewards[torch.arange(len(scores), device=rewards.device), last] += scores
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalized advantage estimation over response tokens (mask = 1); the value after the end is 0."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last * (mask[:, t + 1] if t + 1 < T else 0)
        adv[:, t] = last * mask[:, t]
    returns = adv + values
    return adv * mask, returns * mask


def policy_terms(logp, old_logp, adv, clip_range: float):
    """Per token: the clipped surrogate, whether clipping bit, and approx KL (k3 of old vs new, cleanRL's)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    return torch.max(unclipped, clipped), (clipped > unclipped).float(), (ratio - 1) - (logp - old_logp)


def value_terms(values, old_values, returns, clip_range: float):
    """Per token: half the clipped squared error of the value head."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)


def policy_loss(logp, old_logp, adv, mask, clip_range: float):
    loss, clipfrac, approx_kl = policy_terms(logp, old_logp, adv, clip_range)
    return masked_mean(loss, mask), masked_mean(clipfrac, mask), masked_mean(approx_kl, mask)


def value_loss(values, old_values, returns, mask, clip_range: float):
    return masked_mean(value_terms(values, old_values, returns, clip_range), mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    var_y = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    resid = returns - values
    var_r = masked_mean((resid - masked_mean(resid, mask)) ** 2, mask)
    return float("nan") if var_y.item() == 0 else float(1 - var_r / var_y)


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all = F.log_softmax(logits.float(), dim=-1)
    logp = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


# ---------------------------------------------------------------- batches


@dataclass
class Rollout:
    """Padded episodes. Position t of the `*_logp`, `values`, `mask` tensors scores token t+1 of `input_ids`."""

    input_ids: torch.Tensor  # (B, T) prompt + response, right-padded
    attention_mask: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T-1) 1 where position t predicts a response token
    scores: torch.Tensor  # (B,) episode reward from the game (SRC, CGC, goodhart)
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    # 1 where the response token was the policy's own choice; tokens written by the calculator are 0:
    # they carry no gradient and no KL, but still count for values and GAE (they are part of the episode).
    action_mask: torch.Tensor | None = None
    # (B,) the KL penalty's weight for each episode (a role's own, `ppo.sneaky_kl_coef`); None: cfg.kl_coef
    kl_coef: torch.Tensor | None = None

    @property
    def act(self) -> torch.Tensor:
        return self.mask if self.action_mask is None else self.action_mask

    def rows(self, idx: torch.Tensor) -> "Rollout":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Rollout(*(pick(getattr(self, f)) for f in self.__dataclass_fields__))


def pad_episodes(prompts: list[list[int]], responses: list[list[int]], pad_id: int, scores: list[float],
                 forced: list[list[bool] | None] | None = None, kl_coefs: list[float] | None = None) -> Rollout:
    seqs = [p + r for p, r in zip(prompts, responses)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width - 1))
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        attn[i, : len(p) + len(r)] = 1
        mask[i, len(p) - 1 : len(p) + len(r) - 1] = 1
    action = None
    if forced is not None and any(f is not None and any(f) for f in forced):
        action = mask.clone()
        for i, (p, f) in enumerate(zip(prompts, forced)):
            for t, was_forced in enumerate(f or []):
                if was_forced:
                    action[i, len(p) - 1 + t] = 0
    coefs = None if kl_coefs is None else torch.tensor(kl_coefs, dtype=torch.float32)
    return Rollout(ids, attn, mask, torch.tensor(scores, dtype=torch.float32), action_mask=action, kl_coef=coefs)


class ValueHead(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        torch.nn.init.zeros_(self.net[2].weight)
        torch.nn.init.zeros_(self.net[2].bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.net(hidden_states.detach().float()).squeeze(-1)


class ActorCritic(torch.nn.Module):
    """Policy and value head as one module, so one DeepSpeed engine (one optimizer, one ZeRO
    partitioning, one gradient all-reduce) covers both, and plain torch runs the very same code."""

    def __init__(self, policy, value_head: ValueHead):
        super().__init__()
        self.policy, self.value_head = policy, value_head

    def forward(self, input_ids, attention_mask, with_values: bool = True):
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=with_values)
        values = self.value_head(out.hidden_states[-1][:, :-1]) if with_values else None
        return out.logits, values


def forward(model: ActorCritic, batch: Rollout, with_values: bool = True, temperature: float = 1.0):
    """Log-probs under the *sampling* distribution (logits / temperature), as the samples were drawn."""
    logits, values = model(batch.input_ids, batch.attention_mask, with_values)
    logp, entropy = logprobs_and_entropy(logits[:, :-1] / temperature, batch.input_ids[:, 1:])
    return logp, entropy, values


# ---------------------------------------------------------------- data parallel


class Reducer:
    """Sums across the prover group's ranks (identity for one actor).

    Every statistic that a single actor takes over its whole batch (advantage whitening, the token
    count a minibatch loss is divided by, explained variance, logged means) is taken over the
    union of all ranks' shards instead, so N actors holding N shards compute what one actor holding
    the whole batch would.
    """

    def __init__(self, world_size: int = 1):
        self.world_size = world_size

    def sum(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        flat = torch.stack([x.detach().double().reshape(()).cpu() for x in xs])
        if self.world_size > 1:
            import torch.distributed as dist

            on_wire = flat.to(_comm_device())
            dist.all_reduce(on_wire)
            flat = on_wire.cpu()
        return list(flat.unbind())


def _comm_device() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def whiten_across(x: torch.Tensor, mask: torch.Tensor, reducer: Reducer) -> torch.Tensor:
    """`masked_whiten` over the union of every rank's tokens (two passes, as the single-rank one)."""
    if reducer.world_size == 1:
        return masked_whiten(x, mask)
    total, count = reducer.sum((x * mask).sum(), mask.sum())
    mean = (total / count.clamp(min=1)).to(x.dtype)
    (sq,) = reducer.sum((((x - mean) ** 2) * mask).sum())
    var = (sq / count.clamp(min=1)).to(x.dtype)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def explained_variance_across(values, returns, mask, reducer: Reducer) -> float:
    if reducer.world_size == 1:
        return explained_variance(values, returns, mask)
    resid = returns - values
    s_y, s_r, n = reducer.sum((returns * mask).sum(), (resid * mask).sum(), mask.sum())
    n = n.clamp(min=1)
    m_y, m_r = (s_y / n).to(values.dtype), (s_r / n).to(values.dtype)
    v_y, v_r = reducer.sum((((returns - m_y) ** 2) * mask).sum(), (((resid - m_r) ** 2) * mask).sum())
    return float("nan") if v_y.item() == 0 else float(1 - v_r / v_y)


class TorchStepper:
    """Plain torch: accumulate, clip the global norm, step."""

    def __init__(self, model: ActorCritic, cfg):
        self.model, self.cfg = model, cfg
        self.opt = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.95), weight_decay=0.0)

    def backward(self, loss: torch.Tensor, boundary: bool) -> None:
        loss.backward()
        if boundary:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)


class DeepSpeedStepper:
    """A DeepSpeed engine: ZeRO partitioning, the gradient all-reduce across ranks, clipping by the
    global norm. Each rank's loss is already its share of the minibatch's global token mean times
    the world size, and DeepSpeed averages gradients over ranks, so no loss is scaled again here."""

    def __init__(self, engine, cfg):
        self.engine, self.cfg = engine, cfg

    def backward(self, loss: torch.Tensor, boundary: bool) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)
        self.engine.step()


def param_groups(model: ActorCritic, cfg) -> list[dict]:
    return [
        {"params": [p for p in model.policy.parameters() if p.requires_grad], "lr": cfg.lr},
        {"params": list(model.value_head.parameters()), "lr": cfg.critic_lr},
    ]


def split_even(idx: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """`parts` chunks whose sizes differ by at most one: every rank takes the same number of
    optimizer steps (a collective each), however its shard's size divides."""
    return [c for c in torch.tensor_split(idx, parts) if len(c)]


# ---------------------------------------------------------------- the trainer


class PPOTrainer:
    """PPO on one rank's shard of the batch; with `world_size` > 1 the ranks form one data-parallel
    group (`stepper` is then a DeepSpeed engine's) and every global quantity is reduced across them.

    `cfg.minibatch_size` is the global minibatch (all ranks together), so a config means the same
    optimization on one actor or on eight.
    """

    def __init__(self, policy, ref, cfg, seed: int, temperature: float = 1.0, *, world_size: int = 1,
                 deepspeed_config: dict | None = None):
        self.ref, self.cfg, self.temperature = ref, cfg, temperature
        self.critic_free = getattr(cfg, "advantage", "gae") == "group"
        torch.manual_seed(seed)
        value_head = ValueHead(policy.config.hidden_size).to(next(policy.parameters()).device)
        model = ActorCritic(policy, value_head)
        self.reducer = Reducer(world_size)
        if deepspeed_config is None:
            if world_size > 1:
                raise ValueError("more than one rank needs a DeepSpeed engine (deepspeed_config)")
            self.model, self.stepper = model, TorchStepper(model, cfg)
        else:
            import deepspeed

            opt = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.95), weight_decay=0.0)
            engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=deepspeed_config)
            self.model, self.stepper = engine, DeepSpeedStepper(engine, cfg)
        self.policy = model.policy  # the module the actor samples with and saves
        self.generator = torch.Generator().manual_seed(seed)

    def _kl_coef(self, batch: Rollout) -> "float | torch.Tensor":
        return self.cfg.kl_coef if batch.kl_coef is None else batch.kl_coef.to(batch.scores.device)

    @torch.no_grad()
    def prepare(self, batch: Rollout) -> dict:
        """Old log-probs, values, reference log-probs, KL-shaped rewards, GAE advantages."""
        self.model.eval()
        batch.old_logp, _, batch.old_values = forward(self.model, batch, temperature=self.temperature)
        ref_out = self.ref(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        batch.ref_logp, _ = logprobs_and_entropy(ref_out.logits[:, :-1] / self.temperature, batch.input_ids[:, 1:])
        kl = kl_penalty(batch.old_logp, batch.ref_logp, self.cfg.kl_estimator) * batch.act
        coef = self._kl_coef(batch) if self.cfg.kl_in == "reward" else 0.0
        rewards = token_rewards(batch.scores, kl, batch.mask, coef)
        if self.critic_free:  # the baseline is already in the scores (leave-one-out over the group)
            batch.old_values = torch.zeros_like(batch.old_values)
            adv, batch.returns = gae(rewards, batch.old_values, batch.mask, self.cfg.gamma, 1.0)
        else:
            adv, batch.returns = gae(rewards, batch.old_values * batch.mask, batch.mask, self.cfg.gamma, self.cfg.lam)
        batch.advantages = whiten_across(adv, batch.mask, self.reducer) if self.cfg.whiten_advantages else adv
        seq_kl = (kl_penalty(batch.old_logp, batch.ref_logp, "k1") * batch.act).sum(1)
        total, n = self.reducer.sum(seq_kl.sum(), torch.tensor(float(len(seq_kl))))
        return {"kl_to_init": (total / n).item()}

    def update(self, batch: Rollout) -> dict:
        cfg, world = self.cfg, self.reducer.world_size
        stats = self.prepare(batch)
        self.model.train()
        n = batch.input_ids.shape[0]
        (n_all,) = self.reducer.sum(torch.tensor(float(n)))
        n_minibatches = max(1, -(-int(n_all.item()) // cfg.minibatch_size))  # ceil, the same on every rank
        sums = {k: torch.zeros((), dtype=torch.float64) for k in ("pg_loss", "vf_loss", "entropy", "clipfrac", "approx_kl")}
        tokens_seen = torch.zeros((), dtype=torch.float64)
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=self.generator).to(batch.input_ids.device)
            for idx in split_even(perm, n_minibatches):
                # every token of the global minibatch weighs the same, whichever rank holds it
                (mb_tokens,) = self.reducer.sum(batch.act[idx].sum())
                mb_tokens = mb_tokens.clamp(min=1).to(torch.float32)
                (mb_value_tokens,) = self.reducer.sum(batch.mask[idx].sum())
                mb_value_tokens = mb_value_tokens.clamp(min=1).to(torch.float32)
                micros = split_even(idx, cfg.grad_accum)
                if isinstance(self.stepper, DeepSpeedStepper) and len(micros) != cfg.grad_accum:
                    # DeepSpeed steps every grad_accum micro-batches by its own count: fewer would shift it
                    raise RuntimeError(f"a minibatch share of {len(idx)} episodes cannot make ppo.grad_accum="
                                       f"{cfg.grad_accum} micro-batches; lower ppo.grad_accum")
                for i, m in enumerate(micros):
                    part = batch.rows(m)
                    logp, entropy, values = forward(self.model, part, temperature=self.temperature)
                    pg, clipfrac, approx_kl = ((x * part.act).sum() for x in policy_terms(
                        logp, part.old_logp, part.advantages, cfg.clip_range))
                    vf = (value_terms(values, part.old_values, part.returns, cfg.value_clip_range) * part.mask).sum()
                    loss = pg / mb_tokens + (0.0 if self.critic_free else cfg.vf_coef * vf / mb_value_tokens)
                    if cfg.kl_in == "loss":
                        coef = self._kl_coef(part)
                        coef = coef.reshape(-1, 1) if isinstance(coef, torch.Tensor) else coef
                        loss = loss + (coef * kl_penalty(logp, part.ref_logp, cfg.kl_estimator) * part.act).sum() / mb_tokens
                    self.stepper.backward(loss * world, boundary=i == len(micros) - 1)
                    for k, v in (("pg_loss", pg), ("vf_loss", vf), ("clipfrac", clipfrac),
                                 ("approx_kl", approx_kl), ("entropy", (entropy * part.act).sum())):
                        sums[k] += v.detach().double().cpu()
                    tokens_seen += part.act.sum().double().cpu()
        self.model.eval()
        # token means over every epoch and rank (vf_loss over value tokens, the rest over action tokens)
        reduced = self.reducer.sum(*sums.values(), tokens_seen,
                                   torch.tensor(float(batch.mask.sum().item() * cfg.epochs), dtype=torch.float64))
        *totals, n_act, n_val = reduced
        for (k, _), total in zip(sums.items(), totals):
            stats[k] = (total / (n_val if k == "vf_loss" else n_act).clamp(min=1)).item()
        stats["explained_variance"] = (float("nan") if self.critic_free else
                                       explained_variance_across(batch.old_values, batch.returns, batch.mask, self.reducer))
        rt, rows = self.reducer.sum(batch.mask.sum(), torch.tensor(float(n)))
        stats["response_tokens"] = (rt / rows).item()
        return stats

