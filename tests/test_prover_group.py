"""Two prover actors under real Ray, one gloo process group, one DeepSpeed ZeRO engine each: a PPO
update on two shards must be the update one plain-torch actor makes on the whole batch.

Both sides start from the same warm weights, train on the very same episodes (a batch the
single actor sampled, handed to the group as an offline batch) with the same rewards, and are
compared on every logged statistic and on every parameter after the update. The fast tests at
the bottom check placement plans and the config's sharding rules without Ray.
"""

from __future__ import annotations

import random

import pytest
import torch

from pvg.config import DeepSpeedConfig, PvgConfig, ResourcesConfig, load_config
from pvg.errors import PvgError
from pvgrun import CONFIG

STATS = ("kl_to_init", "pg_loss", "vf_loss", "entropy", "clipfrac", "approx_kl", "explained_variance", "response_tokens")


@pytest.fixture(scope="module")
def init_model(tmp_path_factory):
    """A tokenizer trained on synthetic problems and a tiny Llama, briefly trained so its samples vary."""
    from pvg.game.models import build_tiny_causal_lm
    from pvg.data.roles import prover_prompt
    from pvg.data.synth import generate
    from pvg.data.tokenizer import train_tokenizer
    from pvg.game.warmstart import corpus_texts

    root = tmp_path_factory.mktemp("prover-init")
    problems = generate(200, seed=3, min_steps=2, max_steps=2)
    tok = train_tokenizer(corpus_texts(problems))
    cfg = load_config(CONFIG)
    model = build_tiny_causal_lm(tok, cfg.prover.tiny, seed=0)
    model.save_pretrained(root)
    tok.save_pretrained(root)
    questions = [p.question for p in problems[:8]]
    roles = ["helpful", "sneaky"] * 4
    return root, questions, roles, [prover_prompt(tok, q, r, True) for q, r in zip(questions, roles)]


def ppo_cfg(**over):
    base = ["ppo.problems_per_step=2", "ppo.samples_per_problem=2", "ppo.minibatch_size=8", "ppo.epochs=2",
            "ppo.grad_accum=2", "ppo.lr=3e-3", "ppo.kl_coef=0.05", "prover.max_new_tokens=24"]
    return load_config(CONFIG, base + [f"{k}={v}" for k, v in over.items()])


def single_actor_update(root, questions, roles, cfg: PvgConfig):
    """The reference: one actor, plain torch (no DeepSpeed, no process group), in this process."""
    from pvg.game.actors import ProverActor

    actor = ProverActor(str(root), str(root), cfg.prover, cfg.ppo, DeepSpeedConfig(use="never"), True, 0, 1, 1, 0)
    actor.reset(seed=11)
    actor.sample(questions, roles, seed=5)
    # responses cut to different lengths: each rank's shard pads to its own width
    episodes = [(s.prompt_ids, s.response_ids[: len(s.response_ids) - 2 * i], s.forced) for i, s in enumerate(actor._last)]
    rng = random.Random(0)
    rewards = [rng.uniform(-2, 2) for _ in episodes]
    stats = actor.ppo_update(rewards, episodes)
    params = {k: v.detach().clone() for k, v in actor.policy.state_dict().items()}
    return episodes, rewards, stats, params


@pytest.fixture(scope="module")
def local_ray():
    import ray

    if ray.is_initialized():  # another test's in-process Ray: this test needs its own 4 logical CPUs
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_two_actors_match_one(local_ray, init_model, tmp_path, stage):
    from transformers import AutoModelForCausalLM

    from pvg.game.actors import place_groups

    root, questions, roles, _ = init_model
    cfg = ppo_cfg(**{"deepspeed.zero_stage": stage, "resources.prover.actors": 2})
    episodes, rewards, want, want_params = single_actor_update(root, questions, roles, cfg)
    assert len(episodes) == 8 and len({len(e[1]) for e in episodes}) > 1  # shards pad to different widths

    prover, verifier, pgs = place_groups(
        cfg.resources, (str(root), str(root), cfg.prover, cfg.ppo, cfg.deepspeed, True),
        (str(root), str(root), cfg.verifier))
    try:
        prover.reset(seed=11)
        got = prover.ppo_update(rewards, episodes)
        for k in STATS:
            assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-5), (k, got[k], want[k])
        prover.save(str(tmp_path / "ckpt"))
        after = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").state_dict()
        before = AutoModelForCausalLM.from_pretrained(root).state_dict()
        # Adam moves each weight by up to lr per step whatever its gradient's size, so float noise in a
        # near-zero gradient shows up at that scale: allow 3% of one step (lr = 3e-3), nothing more.
        for name, w in want_params.items():
            assert torch.allclose(after[name], w, rtol=0, atol=1e-4), (name, (after[name] - w).abs().max())
        moved = max((want_params[n] - before[n]).abs().max().item() for n in want_params)
        assert moved > 2e-3  # the update really moved the weights (two steps of lr 3e-3), on both sides alike

        # the group samples as one: every question answered once, in order, across both ranks
        out = prover.sample(questions[:5], roles[:5], seed=1)
        assert len(out) == 5 and all(isinstance(s["text"], str) for s in out)
    finally:
        import ray

        for a in prover.actors + verifier.actors:
            ray.kill(a)
        for pg in pgs:
            ray.util.remove_placement_group(pg)


# --------------------------------------------------------------------------- no Ray needed
def test_placement_plans():
    from pvg.game.placement import plan

    pl = plan(ResourcesConfig.model_validate({"prover": {"actors": 2, "cpus_per_actor": 4, "gpus_per_actor": 1},
                                              "verifier": {"actors": 1, "cpus_per_actor": 2, "gpus_per_actor": 1}}))
    assert pl.bundles == {"prover": [{"CPU": 4, "GPU": 1}] * 2, "verifier": [{"CPU": 2, "GPU": 1}]}
    assert [(s.group, s.bundle, s.gpus) for s in pl.slots["verifier"]] == [("verifier", 0, 1)]
    co = plan(ResourcesConfig.model_validate({"prover": {"actors": 2, "cpus_per_actor": 4, "gpus_per_actor": 1},
                                              "verifier": {"actors": 1, "cpus_per_actor": 2, "gpus_per_actor": 1},
                                              "colocate": True}))
    assert co.bundles == {"prover": [{"CPU": 6, "GPU": 1}, {"CPU": 4, "GPU": 1}]}  # 2 GPUs, not 3
    assert [(s.group, s.bundle, s.gpus) for s in co.slots["prover"]] == [("prover", 0, 0.5), ("prover", 1, 1)]
    assert [(s.group, s.bundle, s.gpus) for s in co.slots["verifier"]] == [("prover", 0, 0.5)]
    # torch threads follow cpus_per_actor unless resources.*.torch_threads says otherwise
    assert [s.threads for s in pl.slots["prover"] + pl.slots["verifier"]] == [4, 4, 2]
    turns = plan(ResourcesConfig.model_validate({"prover": {"cpus_per_actor": 1, "torch_threads": 2},
                                                 "verifier": {"cpus_per_actor": 0.5}}))
    assert [s.threads for s in turns.slots["prover"] + turns.slots["verifier"]] == [2, 1]


def test_colocate_fits_where_separate_groups_do_not():
    from pvg.game.placement import check_fits

    node = [{"CPU": 8, "GPU": 2}]
    asked = {"prover": {"actors": 2, "cpus_per_actor": 2, "gpus_per_actor": 1},
             "verifier": {"actors": 1, "cpus_per_actor": 1, "gpus_per_actor": 1}}
    with pytest.raises(PvgError, match="3 GPU in all but the cluster has 2"):
        check_fits(ResourcesConfig.model_validate(asked), node, "test")
    check_fits(ResourcesConfig.model_validate({**asked, "colocate": True}), node, "test")


@pytest.mark.parametrize("sets, needle", [
    (["resources.prover.actors=3"], "resources.prover.actors=3 must divide the PPO batch"),
    (["resources.prover.actors=2", "ppo.minibatch_size=5"], "must divide ppo.minibatch_size (5)"),
    (["resources.prover.actors=2", "deepspeed.use=never"], "deepspeed.use=never allows one actor"),
    (["ppo.grad_accum=17"], "ppo.grad_accum (17) is more than the 16 episodes"),
    (["resources.colocate=true", "resources.verifier.actors=2"], "verifier.actors (2) must be <= prover.actors (1)"),
    (["resources.colocate=true", "resources.prover.gpus_per_actor=2"], "prover.gpus_per_actor must be <= 1"),
])
def test_sharding_rules_name_the_keys(sets, needle):
    from pvg.config import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(CONFIG, sets)
    assert needle in str(e.value), str(e.value)
    assert "(got {" not in str(e.value)  # a whole-config rule does not dump the config


def test_shards_are_even_and_seeded_apart():
    from pvg.game.actors import shard_bounds, shard_seed

    assert shard_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    assert shard_seed(42, 0) == 42 and len({shard_seed(42, r) for r in range(8)}) == 8


def test_reset_from_a_checkpoint_keeps_the_initial_prover_as_reference(init_model, tmp_path):
    """`game.prover_start: last_round`: the phase starts from last round's weights, the KL still to the initial ones."""
    from pvg.game.actors import ProverActor

    root, questions, roles, _ = init_model
    cfg = ppo_cfg()
    actor = ProverActor(str(root), str(root), cfg.prover, cfg.ppo, DeepSpeedConfig(use="never"), True, 0, 1, 1, 0)
    actor.reset(seed=11)
    actor.sample(questions, roles, seed=5)
    episodes = [(s.prompt_ids, s.response_ids, s.forced) for s in actor._last]
    actor.ppo_update([1.0 if i % 2 else -1.0 for i in range(len(episodes))], episodes)
    trained = {k: v.detach().clone() for k, v in actor.policy.state_dict().items()}
    actor.save(str(tmp_path / "round-0"))
    initial = {k: v.detach().clone() for k, v in actor.ref.state_dict().items()}
    assert any(not torch.equal(trained[k], initial[k]) for k in trained), "the update changed nothing"

    actor.reset(seed=12, start=str(tmp_path / "round-0"))
    assert all(torch.equal(v, trained[k]) for k, v in actor.policy.state_dict().items())
    assert all(torch.equal(v, initial[k]) for k, v in actor.ref.state_dict().items())
    actor.reset(seed=13)  # warm_start, the game's default: back to the initial weights
    assert all(torch.equal(v, initial[k]) for k, v in actor.policy.state_dict().items())


def test_prover_start_last_round_refuses_lora():
    with pytest.raises(PvgError, match="prover_start=last_round"):
        load_config(CONFIG, ["game.prover_start=last_round", "prover.lora.r=4"])
    assert load_config(CONFIG, ["game.prover_start=last_round"]).game.prover_start == "last_round"


def test_a_draw_that_is_no_rollout_leaves_the_one_ppo_updates_on(init_model):
    """The exploit test's fresh batch (`keep=False`) is sampled between a PPO batch and its update:
    the update must still read the PPO batch, as if the fresh draw had not happened."""
    from pvg.game.actors import ProverActor

    root, questions, roles, _ = init_model
    cfg = ppo_cfg()
    after = []
    for extra in (False, True):
        actor = ProverActor(str(root), str(root), cfg.prover, cfg.ppo, DeepSpeedConfig(use="never"), True, 0, 1, 1, 0)
        actor.reset(seed=11)
        kept = actor.sample(questions, roles, seed=5)
        if extra:
            fresh = actor.sample(questions[:3], roles[:3], seed=6, keep=False)
            assert len(fresh) == 3 and len(actor._last) == len(kept)
            with pytest.raises(RuntimeError, match="last sample"):
                actor.ppo_update([0.0] * 3)  # the fresh draw's size is not the rollout's
        stats = actor.ppo_update([1.0 if i % 2 else -1.0 for i in range(len(kept))])
        assert stats["response_tokens"] == pytest.approx(sum(s["tokens"] for s in kept) / len(kept))  # a mean
        after.append({k: v.detach().clone() for k, v in actor.policy.state_dict().items()})
    assert all(torch.equal(after[0][k], after[1][k]) for k in after[0]), "the fresh draw changed the update"
