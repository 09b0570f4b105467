"""PPO for a language-model policy, written out (TRL 1.x ships no PPO trainer).

Names follow the PPO paper and cleanRL's `ppo.py`. One episode is one sampled solution; its
reward arrives on the last response token, a per-token KL penalty to the frozen initial prover is
added to the reward (or to the loss), token-level GAE turns that into advantages.

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
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """-kl_coef·KL on every response token, plus the episode's score on its last response token."""
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


def policy_loss(logp, old_logp, adv, mask, clip_range: float):
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean((ratio - 1) - (logp - old_logp), mask)  # k3 of old vs new, cleanRL's choice
    return loss, clipfrac, approx_kl


def value_loss(values, old_values, returns, mask, clip_range: float):
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)
    return loss


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

    @property
    def act(self) -> torch.Tensor:
        return self.mask if self.action_mask is None else self.action_mask

    def rows(self, idx: torch.Tensor) -> "Rollout":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Rollout(*(pick(getattr(self, f)) for f in self.__dataclass_fields__))


def pad_episodes(prompts: list[list[int]], responses: list[list[int]], pad_id: int, scores: list[float],
                 forced: list[list[bool] | None] | None = None) -> Rollout:
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
    return Rollout(ids, attn, mask, torch.tensor(scores, dtype=torch.float32), action_mask=action)


class ValueHead(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        torch.nn.init.zeros_(self.net[2].weight)
        torch.nn.init.zeros_(self.net[2].bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.net(hidden_states.detach().float()).squeeze(-1)


def forward(policy, value_head, batch: Rollout, with_values: bool = True, temperature: float = 1.0):
    """Log-probs under the *sampling* distribution (logits / temperature), as the samples were drawn."""
    out = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=with_values)
    logp, entropy = logprobs_and_entropy(out.logits[:, :-1] / temperature, batch.input_ids[:, 1:])
    values = value_head(out.hidden_states[-1][:, :-1]) if with_values else None
    return logp, entropy, values


# ---------------------------------------------------------------- the trainer


class PPOTrainer:
    def __init__(self, policy, ref, cfg, seed: int, temperature: float = 1.0):
        self.policy, self.ref, self.cfg, self.temperature = policy, ref, cfg, temperature
        torch.manual_seed(seed)
        self.value_head = ValueHead(policy.config.hidden_size).to(next(policy.parameters()).device)
        self.opt = torch.optim.AdamW(
            [
                {"params": [p for p in policy.parameters() if p.requires_grad], "lr": cfg.lr},
                {"params": self.value_head.parameters(), "lr": cfg.critic_lr},
            ],
            betas=(0.9, 0.95),
            weight_decay=0.0,
        )
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def prepare(self, batch: Rollout) -> dict:
        """Old log-probs, values, reference log-probs, KL-shaped rewards, GAE advantages."""
        self.policy.eval()
        batch.old_logp, _, batch.old_values = forward(self.policy, self.value_head, batch, temperature=self.temperature)
        ref_out = self.ref(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        batch.ref_logp, _ = logprobs_and_entropy(ref_out.logits[:, :-1] / self.temperature, batch.input_ids[:, 1:])
        kl = kl_penalty(batch.old_logp, batch.ref_logp, self.cfg.kl_estimator) * batch.act
        coef = self.cfg.kl_coef if self.cfg.kl_in == "reward" else 0.0
        rewards = token_rewards(batch.scores, kl, batch.mask, coef)
        adv, batch.returns = gae(rewards, batch.old_values * batch.mask, batch.mask, self.cfg.gamma, self.cfg.lam)
        batch.advantages = masked_whiten(adv, batch.mask) if self.cfg.whiten_advantages else adv
        seq_kl = (kl_penalty(batch.old_logp, batch.ref_logp, "k1") * batch.act).sum(1)
        return {"kl_to_init": seq_kl.mean().item()}

    def update(self, batch: Rollout) -> dict:
        cfg = self.cfg
        stats = self.prepare(batch)
        self.policy.train()
        n = batch.input_ids.shape[0]
        mb = min(cfg.minibatch_size, n)
        micro = max(1, mb // cfg.grad_accum)
        logs: dict[str, list[float]] = {k: [] for k in ("pg_loss", "vf_loss", "entropy", "clipfrac", "approx_kl")}
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=self.generator).to(batch.input_ids.device)
            for start in range(0, n, mb):
                idx = perm[start : start + mb]
                self.opt.zero_grad(set_to_none=True)
                for m0 in range(0, len(idx), micro):
                    part = batch.rows(idx[m0 : m0 + micro])
                    weight = len(part.scores) / len(idx)
                    logp, entropy, values = forward(self.policy, self.value_head, part, temperature=self.temperature)
                    pg, clipfrac, approx_kl = policy_loss(logp, part.old_logp, part.advantages, part.act, cfg.clip_range)
                    vf = value_loss(values, part.old_values, part.returns, part.mask, cfg.value_clip_range)
                    loss = pg + cfg.vf_coef * vf
                    if cfg.kl_in == "loss":
                        loss = loss + cfg.kl_coef * masked_mean(kl_penalty(logp, part.ref_logp, cfg.kl_estimator), part.act)
                    (loss * weight).backward()
                    for k, v in (("pg_loss", pg), ("vf_loss", vf), ("clipfrac", clipfrac), ("approx_kl", approx_kl),
                                 ("entropy", masked_mean(entropy, part.act))):
                        logs[k].append(v.item())
                torch.nn.utils.clip_grad_norm_(
                    list(self.policy.parameters()) + list(self.value_head.parameters()), cfg.max_grad_norm
                )
                self.opt.step()
        self.policy.eval()
        stats |= {k: sum(v) / len(v) for k, v in logs.items()}
        stats["explained_variance"] = explained_variance(batch.old_values, batch.returns, batch.mask)
        stats["response_tokens"] = batch.mask.sum(1).mean().item()
        return stats
