"""PPO pieces checked against plain-Python reference loops, plus a tiny-model trainer smoke test."""

import copy
import math

import pytest
import torch

from pvg.game.ppo import (
    PPOTrainer,
    explained_variance,
    gae,
    kl_penalty,
    masked_whiten,
    pad_episodes,
    policy_loss,
    token_rewards,
    value_loss,
)

LOG2 = math.log(2.0)


def ragged_mask(starts: list[int], lengths: list[int], width: int) -> torch.Tensor:
    mask = torch.zeros(len(starts), width, dtype=torch.float64)
    for i, (s, n) in enumerate(zip(starts, lengths)):
        mask[i, s : s + n] = 1
    return mask


# ---------------------------------------------------------------- GAE


def reference_gae(rewards, values, mask, gamma, lam):
    """Per sequence: A_t = sum_l (gamma*lam)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t, V after the end = 0."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    ret = [[0.0] * T for _ in range(B)]
    for i in range(B):
        pos = [t for t in range(T) if mask[i][t] == 1]
        if not pos:
            continue
        s, e = pos[0], pos[-1]
        assert pos == list(range(s, e + 1))
        delta = {}
        for t in range(s, e + 1):
            v_next = values[i][t + 1] if t + 1 <= e else 0.0
            delta[t] = rewards[i][t] + gamma * v_next - values[i][t]
        for t in range(s, e + 1):
            adv[i][t] = sum((gamma * lam) ** l * delta[t + l] for l in range(e - t + 1))
            ret[i][t] = adv[i][t] + values[i][t]
    return adv, ret


@pytest.mark.parametrize("gamma, lam", [(0.9, 0.8), (0.99, 0.95), (1.0, 0.5), (0.7, 1.0)])
def test_gae_matches_textbook_loop(gamma, lam):
    g = torch.Generator().manual_seed(0)
    T = 12
    starts, lengths = [0, 3, 5, 2, 7], [4, 6, 1, 10, 5]  # different offsets, lengths; one ends at T-1
    mask = ragged_mask(starts, lengths, T)
    # random everywhere, including outside the response: those entries must be ignored
    rewards = torch.randn(5, T, generator=g, dtype=torch.float64)
    values = torch.randn(5, T, generator=g, dtype=torch.float64)

    adv, ret = gae(rewards, values, mask, gamma, lam)
    ref_adv, ref_ret = reference_gae(rewards.tolist(), values.tolist(), mask.tolist(), gamma, lam)

    assert torch.allclose(adv, torch.tensor(ref_adv, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(ret, torch.tensor(ref_ret, dtype=torch.float64), atol=1e-10)
    assert torch.all(adv[mask == 0] == 0)
    assert torch.all(ret[mask == 0] == 0)
    assert torch.allclose((ret - adv)[mask == 1], values[mask == 1])


def test_gae_hand_example():
    # one sequence, response at positions 1..2, gamma=0.5, lam=0.5
    rewards = torch.tensor([[9.0, 1.0, 2.0, 9.0]], dtype=torch.float64)
    values = torch.tensor([[9.0, 0.5, 1.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    adv, ret = gae(rewards, values, mask, 0.5, 0.5)
    # delta_2 = 2 - 1 = 1 ; delta_1 = 1 + 0.5*1 - 0.5 = 1 ; A_2 = 1 ; A_1 = 1 + 0.25*1 = 1.25
    assert adv[0].tolist() == pytest.approx([0.0, 1.25, 1.0, 0.0])
    assert ret[0].tolist() == pytest.approx([0.0, 1.75, 2.0, 0.0])


# ---------------------------------------------------------------- token rewards


def test_token_rewards():
    g = torch.Generator().manual_seed(1)
    T = 9
    starts, lengths = [0, 2, 4, 1], [3, 7, 1, 5]
    mask = ragged_mask(starts, lengths, T)
    kl = torch.randn(4, T, generator=g, dtype=torch.float64)
    scores = torch.tensor([1.5, -2.0, 0.25, 3.0], dtype=torch.float64)
    coef = 0.1
    got = token_rewards(scores, kl, mask, coef)
    for i in range(4):
        last = starts[i] + lengths[i] - 1
        for t in range(T):
            expected = 0.0
            if mask[i, t] == 1:
                expected = -coef * kl[i, t].item()
            if t == last:
                expected += scores[i].item()
            assert got[i, t].item() == pytest.approx(expected, abs=1e-12), (i, t)


def test_token_rewards_one_kl_weight_per_episode():
    """A role's own KL weight (`ppo.sneaky_kl_coef`): each row is what its scalar weight alone gives."""
    g = torch.Generator().manual_seed(2)
    mask = ragged_mask([0, 2, 1], [4, 3, 5], 7)
    kl = torch.randn(3, 7, generator=g, dtype=torch.float64)
    scores = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    coefs = torch.tensor([0.1, 0.0, 0.3])
    got = token_rewards(scores, kl, mask, coefs)
    for i, c in enumerate(coefs.tolist()):
        assert torch.allclose(got[i], token_rewards(scores, kl, mask, c)[i])
    assert torch.count_nonzero(got[1]) == 1 and got[1].sum() == scores[1]  # weight 0: the score alone, no KL term


# ---------------------------------------------------------------- KL estimators


def test_kl_penalty_hand_values():
    logp = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.3)], dtype=torch.float64)
    ref = torch.tensor([math.log(0.25), math.log(0.5), math.log(0.3)], dtype=torch.float64)
    # log r = log(pi/ref) = +log2, -log2, 0
    assert kl_penalty(logp, ref, "k1").tolist() == pytest.approx([0.6931471805599453, -0.6931471805599453, 0.0])
    # (log r)^2 / 2
    assert kl_penalty(logp, ref, "k2").tolist() == pytest.approx([0.2402265069591007, 0.2402265069591007, 0.0])
    # ref/pi - 1 - log(ref/pi): 0.5 - 1 + log2 ; 2 - 1 - log2 ; 0
    assert kl_penalty(logp, ref, "k3").tolist() == pytest.approx([0.1931471805599453, 0.3068528194400547, 0.0])


def test_kl_penalty_unknown_estimator():
    with pytest.raises(ValueError):
        kl_penalty(torch.zeros(2), torch.zeros(2), "k4")


def test_k3_is_nonnegative():
    g = torch.Generator().manual_seed(2)
    logp = torch.randn(10_000, generator=g, dtype=torch.float64) * 4
    ref = torch.randn(10_000, generator=g, dtype=torch.float64) * 4
    assert torch.all(kl_penalty(logp, ref, "k3") >= 0)
    assert torch.all(kl_penalty(logp, ref, "k2") >= 0)


def test_k1_k3_unbiased_monte_carlo():
    pi = [0.5, 0.2, 0.15, 0.1, 0.05]
    ref = [0.1, 0.3, 0.2, 0.3, 0.1]
    true_kl = sum(p * math.log(p / q) for p, q in zip(pi, ref))  # KL(pi || ref)
    g = torch.Generator().manual_seed(3)
    idx = torch.multinomial(torch.tensor(pi, dtype=torch.float64), 200_000, replacement=True, generator=g)
    logp = torch.log(torch.tensor(pi, dtype=torch.float64))[idx]
    ref_logp = torch.log(torch.tensor(ref, dtype=torch.float64))[idx]
    k1 = kl_penalty(logp, ref_logp, "k1").mean().item()
    k3 = kl_penalty(logp, ref_logp, "k3").mean().item()
    # .5ln5 + .2ln(2/3) + .15ln(.75) + .1ln(1/3) + .05ln(.5) = .8047 - .0811 - .0432 - .1099 - .0347
    assert true_kl == pytest.approx(0.5360, abs=1e-3)
    assert k1 == pytest.approx(true_kl, abs=0.01)
    assert k3 == pytest.approx(true_kl, abs=0.01)


# ---------------------------------------------------------------- policy and value losses


def test_policy_loss_hand_values():
    clip = 0.2
    r = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.1]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 2.0]], dtype=torch.float64)
    old = torch.zeros_like(r)
    mask = torch.ones_like(r)
    loss, clipfrac, approx_kl = policy_loss(torch.log(r), old, adv, mask, clip)
    # per token max(-A r, -A clip(r)): max(-1.5,-1.2)=-1.2 ; max(1.5,1.2)=1.5 ; max(-0.5,-0.8)=-0.5 ;
    # max(0.5,0.8)=0.8 ; max(-2.2,-2.2)=-2.2 -> mean = -1.6/5 = -0.32 ; clipped larger at tokens 0 and 3
    assert loss.item() == pytest.approx(-0.32)
    assert clipfrac.item() == pytest.approx(0.4)
    # (r-1) - log r: 0.5-log1.5, same, -0.5+log2, same, 0.1-log1.1
    expected_kl = (2 * (0.5 - math.log(1.5)) + 2 * (-0.5 + LOG2) + (0.1 - math.log(1.1))) / 5
    assert approx_kl.item() == pytest.approx(expected_kl)


def test_policy_loss_matches_loop():
    g = torch.Generator().manual_seed(4)
    B, T, clip = 4, 10, 0.2
    logp = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3 - 2
    old = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = ragged_mask([0, 2, 5, 1], [6, 8, 3, 1], T)
    loss, clipfrac, approx_kl = policy_loss(logp, old, adv, mask, clip)

    terms, clipped_count, kls, n = 0.0, 0, 0.0, 0
    for i in range(B):
        for t in range(T):
            if mask[i, t] != 1:
                continue
            r = math.exp(logp[i, t].item() - old[i, t].item())
            a = adv[i, t].item()
            un, cl = -a * r, -a * min(max(r, 1 - clip), 1 + clip)
            terms += max(un, cl)
            clipped_count += cl > un
            kls += (r - 1) - math.log(r)
            n += 1
    assert 0 < clipped_count < n  # the case exercises both branches
    assert loss.item() == pytest.approx(terms / n, abs=1e-10)
    assert clipfrac.item() == pytest.approx(clipped_count / n)
    assert approx_kl.item() == pytest.approx(kls / n, abs=1e-10)


def test_value_loss_matches_loop():
    g = torch.Generator().manual_seed(5)
    B, T, clip = 3, 8, 0.2
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    old = values + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.5
    returns = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = ragged_mask([0, 3, 1], [5, 5, 2], T)
    got = value_loss(values, old, returns, mask, clip)
    total, n = 0.0, 0
    for i in range(B):
        for t in range(T):
            if mask[i, t] != 1:
                continue
            v, o, R = values[i, t].item(), old[i, t].item(), returns[i, t].item()
            vc = o + min(max(v - o, -clip), clip)
            total += max((v - R) ** 2, (vc - R) ** 2)
            n += 1
    assert got.item() == pytest.approx(0.5 * total / n, abs=1e-10)


def test_value_loss_hand_values():
    # v=2, old=1, R=0, clip 0.5: unclipped 4, clipped (1.5)^2=2.25 -> max 4
    # v=0, old=1, R=2, clip 0.5: unclipped 4, clipped (0.5-2)^2=2.25 -> max 4
    # v=1.2, old=1, R=3: inside the clip range: (1.8)^2 = 3.24
    v = torch.tensor([[2.0, 0.0, 1.2, 99.0]])
    old = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    R = torch.tensor([[0.0, 2.0, 3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert value_loss(v, old, R, mask, 0.5).item() == pytest.approx(0.5 * (4 + 4 + 3.24) / 3)
    # a case where the clipped term is the larger: v=1.4, old=1, R=2, clip 0.2: (0.6)^2=.36 vs (0.8)^2=.64
    assert value_loss(torch.tensor([1.4]), torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([1.0]), 0.2).item() == (
        pytest.approx(0.5 * 0.64)
    )


# ---------------------------------------------------------------- whitening, explained variance


def test_masked_whiten():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, 9, generator=g, dtype=torch.float64) * 3 + 5
    mask = ragged_mask([0, 2, 4, 1], [3, 7, 2, 5], 9)
    w = masked_whiten(x, mask)
    vals = w[mask == 1].tolist()
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    assert mean == pytest.approx(0.0, abs=1e-8)
    assert var == pytest.approx(1.0, abs=1e-6)
    assert torch.all(w[mask == 0] == 0)
    # shift_mean=False keeps the masked mean of x
    w2 = masked_whiten(x, mask, shift_mean=False)
    xs = x[mask == 1].tolist()
    assert sum(w2[mask == 1].tolist()) / len(xs) == pytest.approx(sum(xs) / len(xs))
    assert torch.all(w2[mask == 0] == 0)


def test_explained_variance():
    g = torch.Generator().manual_seed(7)
    returns = torch.randn(3, 6, generator=g, dtype=torch.float64)
    mask = ragged_mask([0, 1, 2], [6, 4, 3], 6)
    assert explained_variance(returns.clone(), returns, mask) == pytest.approx(1.0)
    vals = returns[mask == 1].tolist()
    mean = sum(vals) / len(vals)
    const = torch.full_like(returns, mean)
    assert explained_variance(const, returns, mask) == pytest.approx(0.0, abs=1e-9)
    # garbage outside the mask does not matter
    noisy = returns.clone()
    noisy[mask == 0] = 1e3
    assert explained_variance(noisy, returns, mask) == pytest.approx(1.0)


# ---------------------------------------------------------------- padding


def test_pad_episodes():
    prompts = [[1, 2, 3], [4], [5, 6]]
    responses = [[7, 8], [9, 10, 11], [12]]
    b = pad_episodes(prompts, responses, pad_id=0, scores=[1.0, -1.0, 0.5])
    assert b.input_ids.tolist() == [[1, 2, 3, 7, 8], [4, 9, 10, 11, 0], [5, 6, 12, 0, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
    # position t predicts token t+1
    assert b.mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 0], [0, 1, 0, 0]]
    assert b.scores.tolist() == [1.0, -1.0, 0.5]
    for i, (p, r) in enumerate(zip(prompts, responses)):
        predicted = [b.input_ids[i, t + 1].item() for t in range(b.mask.shape[1]) if b.mask[i, t] == 1]
        assert predicted == r


# ---------------------------------------------------------------- the trainer, on a tiny model


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg)
    model.eval()
    return model


GOOD, BAD = [10, 10, 11], [20, 20, 21]


def make_batch():
    prompts, responses, scores = [], [], []
    for p in ([3, 4, 5], [6, 7], [8, 9, 12, 13]):
        prompts += [p, p]
        responses += [GOOD, BAD]
        scores += [1.0, -1.0]
    return pad_episodes(prompts, responses, pad_id=0, scores=scores)


def seq_logp(model, prompt, response) -> float:
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    return logp[len(prompt) - 1 :].sum().item()


def test_ppo_trainer_smoke():
    from pvg.config import PPOConfig

    policy = tiny_llama()
    ref = copy.deepcopy(policy)
    ref.requires_grad_(False)
    cfg = PPOConfig(minibatch_size=3)
    trainer = PPOTrainer(policy, ref, cfg, seed=0)

    probe = [3, 4, 5]
    gap0 = seq_logp(policy, probe, GOOD) - seq_logp(policy, probe, BAD)

    all_stats = []
    for _ in range(6):
        all_stats.append(trainer.update(make_batch()))

    keys = {"kl_to_init", "pg_loss", "vf_loss", "entropy", "clipfrac", "approx_kl", "explained_variance"}
    for stats in all_stats:
        assert keys <= stats.keys()
        for k in keys:
            assert math.isfinite(stats[k]), (k, stats[k])
    assert abs(all_stats[0]["kl_to_init"]) < 1e-6  # policy == ref before any step
    assert any(abs(s["kl_to_init"]) > 1e-6 for s in all_stats[1:])  # and it moved afterwards

    gap1 = seq_logp(policy, probe, GOOD) - seq_logp(policy, probe, BAD)
    assert gap1 > gap0 + 0.1, (gap0, gap1)
    # the frozen reference did not move
    assert seq_logp(ref, probe, GOOD) - seq_logp(ref, probe, BAD) == pytest.approx(gap0, abs=1e-5)


def test_group_advantage_gives_every_token_the_episode_return_and_trains_without_a_critic():
    from pvg.config import PPOConfig

    policy = tiny_llama()
    ref = copy.deepcopy(policy)
    ref.requires_grad_(False)
    cfg = PPOConfig(minibatch_size=3, advantage="group", kl_coef=0.0, whiten_advantages=False)
    trainer = PPOTrainer(policy, ref, cfg, seed=0)
    batch = make_batch()
    trainer.prepare(batch)
    # no KL, no value: each response token's advantage is its episode's (already centred) score
    for i, score in enumerate(batch.scores.tolist()):
        adv = batch.advantages[i][batch.mask[i].bool()]
        assert torch.allclose(adv, torch.full_like(adv, score))
    assert float(batch.old_values.abs().sum()) == 0.0

    probe = [3, 4, 5]
    gap0 = seq_logp(policy, probe, GOOD) - seq_logp(policy, probe, BAD)
    for _ in range(6):
        stats = trainer.update(make_batch())
    assert math.isnan(stats["explained_variance"])  # there is no critic to explain anything
    assert seq_logp(policy, probe, GOOD) - seq_logp(policy, probe, BAD) > gap0 + 0.1


def test_per_episode_kl_weight_reaches_the_advantages():
    """With no score, an episode's token rewards are its own weight times its KL: a weight of 0
    leaves its advantages at exactly 0 (critic-free, unwhitened), a weight of 0.2 does not."""
    from pvg.config import PPOConfig

    policy = tiny_llama()
    ref = copy.deepcopy(policy)
    with torch.no_grad():  # a reference that differs from the policy, so the KL is not zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref.requires_grad_(False)
    cfg = PPOConfig(minibatch_size=3, advantage="group", kl_coef=0.2, whiten_advantages=False)
    trainer = PPOTrainer(policy, ref, cfg, seed=0)
    batch = make_batch()
    batch.scores = torch.zeros_like(batch.scores)
    batch.kl_coef = torch.tensor([0.0, 0.2] * 3)
    trainer.prepare(batch)
    for i in range(6):
        adv = batch.advantages[i][batch.mask[i].bool()]
        assert (adv.abs().sum() == 0) == (i % 2 == 0), (i, adv)
