"""LoRA for the prover (pvg/game/lora.py): the reference is the base with the adapter off, a PPO update
trains the adapter alone and equals the same update with plain peft and a separate reference copy,
and a checkpoint holds the merged model and the adapter."""

from __future__ import annotations

import random

import pytest
import torch

from pvg.config import DeepSpeedConfig, LoraSettings, load_config

LORA = LoraSettings(r=4, alpha=8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A hub-style Qwen2 folder straight from its config (no pretraining: these tests need no skill)."""
    from hubkit import gsm8k_problems
    from pvg.game.local_hub import Shape, build_local_model

    path = tmp_path_factory.mktemp("lora") / "qwen2"
    problems, _ = gsm8k_problems(20)
    build_local_model(path, "qwen2", problems, shape=Shape(hidden_size=32, num_heads=4, num_kv_heads=2,
                                                             intermediate_size=64, vocab_size=512), pretrain_steps=0)
    return path


def load(path):
    from pvg.game.models import load_causal_lm

    return load_causal_lm(path).eval()


def inputs(path, n: int = 4):
    from pvg.data.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    tok.padding_side = "right"
    return tok, tok([f"Sam has {i} apples and buys {i + 2} more. #### {2 * i + 2}" for i in range(n)],
                    return_tensors="pt", padding=True)


def test_reference_is_the_base_with_the_adapter_off(folder):
    from pvg.game.lora import AdapterOff, with_fresh_adapter

    base = load(folder)
    policy = with_fresh_adapter(load(folder), LORA, seed=0)
    _, enc = inputs(folder)
    want = base(**enc).logits
    with torch.no_grad():
        assert torch.equal(policy(**enc).logits, want), "a fresh adapter (B = 0) is exactly the base"
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
        assert not torch.allclose(policy(**enc).logits, want, atol=1e-3)
        assert torch.allclose(AdapterOff(policy)(**enc).logits, want, atol=1e-6)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def ppo():
    return load_config(None, ["ppo.problems_per_step=2", "ppo.samples_per_problem=2", "ppo.minibatch_size=4",
                              "ppo.epochs=2", "ppo.lr=1e-2", "ppo.kl_coef=0.1"]).ppo


def batch(folder):
    from pvg.game.ppo import pad_episodes

    tok, enc = inputs(folder, 8)
    ids = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"])]
    rng = random.Random(0)
    return pad_episodes([s[:5] for s in ids], [s[5:] for s in ids], tok.pad_token_id, [rng.uniform(-1, 1) for _ in ids])


def adapter_weights(model) -> dict:
    return {n.replace(".default", ""): p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_lora_ppo_update_equals_plain_peft_with_a_separate_reference(folder):
    import peft

    from pvg.game.lora import AdapterOff, with_fresh_adapter
    from pvg.game.ppo import PPOTrainer

    cfg = ppo()
    ours = with_fresh_adapter(load(folder), LORA, seed=3)
    start = adapter_weights(ours)
    stats = PPOTrainer(ours, AdapterOff(ours), cfg, seed=7).update(batch(folder))

    torch.manual_seed(3)  # by hand: plain peft, and the frozen reference a second copy of the base
    theirs = peft.get_peft_model(load(folder), peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    ref = load(folder).requires_grad_(False)
    by_hand = PPOTrainer(theirs, ref, cfg, seed=7).update(batch(folder))

    got, want = adapter_weights(ours), adapter_weights(theirs)
    assert got.keys() == want.keys() == start.keys()
    assert any(not torch.equal(got[k], start[k]) for k in got), "the update moved the adapter"
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    for key in ("kl_to_init", "pg_loss", "approx_kl"):
        assert stats[key] == pytest.approx(by_hand[key], rel=1e-4, abs=1e-6), key
    fresh = load(folder).state_dict()
    base_now = ours.get_base_model().state_dict()
    for k, v in fresh.items():  # the base weights never change: they are the reference
        lora_free = {n.replace("base_layer.", ""): t for n, t in base_now.items() if "lora_" not in n}
        assert torch.equal(lora_free[k], v), k


def test_actor_checkpoints_the_merged_model_and_the_adapter(folder, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from pvg.data.roles import prover_prompt
    from pvg.game.actors import ProverActor

    cfg = load_config(None, ["ppo.problems_per_step=2", "ppo.samples_per_problem=2", "ppo.minibatch_size=8",
                             "ppo.epochs=1", "ppo.lr=1e-2", "prover.max_new_tokens=12", f"prover.model={folder}",
                             "prover.lora={r: 4, alpha: 8}"])
    actor = ProverActor(str(folder), str(folder), cfg.prover, cfg.ppo, DeepSpeedConfig(use="never"), False, 0, 1, 1, 0)
    assert actor.ref is None, "no second copy of the weights"
    actor.reset(seed=1)
    questions = [f"Sam has {i} apples. How many?" for i in range(4)] * 2
    roles = ["helpful", "sneaky"] * 4
    actor.sample(questions, roles, seed=2)
    actor.ppo_update([random.Random(i).uniform(-1, 1) for i in range(8)])
    _, enc = inputs(folder)
    with torch.no_grad():
        want = actor.policy(**enc).logits
    actor.save(str(tmp_path / "ckpt"))
    ckpt = tmp_path / "ckpt"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "adapter" / "adapter_model.safetensors").is_file()
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(ckpt).eval()
        torch.testing.assert_close(merged(**enc).logits, want, rtol=1e-4, atol=1e-5)
        adapter = PeftModel.from_pretrained(load(folder), ckpt / "adapter").eval()
        torch.testing.assert_close(adapter(**enc).logits, want, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(load(folder)(**enc).logits, want, atol=1e-4), "the adapter was trained"
    assert actor.sample(questions[:2], roles[:2], seed=3), "the merged policy samples after the save"


def test_lora_refuses_zero3():
    from pvg.config import ConfigError

    with pytest.raises(ConfigError, match="prover.lora needs deepspeed.zero_stage <= 2"):
        load_config(None, ["prover.lora={r: 8}", "deepspeed.zero_stage=3", "deepspeed.use=always"])
