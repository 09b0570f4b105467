"""The hub path on CPU: `prover.model` and `verifier.model` set to local Qwen2 and Llama folders.

The folders are what a hub download would be, only small (pvg/game/local_hub.py): byte-level BPE
tokenizers with a chat template, an end-of-turn token apart from EOS, no pad token. What these
tests hold: prompts go through the chat template with the role's system prompt, sampling stops at
the end-of-turn token, a tokenizer with no pad token pads, the verifier is a score head on a
causal-LM base, and two rounds of `pvg train` (one prover actor; two, DeepSpeed ZeRO-2 over gloo)
leave checkpoints and exports that load with plain transformers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from hubkit import gsm8k_problems, write_gsm8k_jsonl
from pvgrun import assert_user_error, env, pvg_cmd

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 160  # "hundreds" at real scale; enough here that a prover that never stopped would show


@pytest.fixture(scope="session")
def hub_models(tmp_path_factory) -> dict:
    from pvg.game.local_hub import Shape, build_local_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hub-models")
    problems, source = gsm8k_problems(48)
    shape = Shape(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, vocab_size=1024)
    # the prover 200 steps: at 60 it answered 1-3% of its own problems at T=1 (real and generated alike), and a
    # pool with no correct solution gives round 0's verifier no pair; at 200, 5%. The verifier needs no answers.
    steps = {"qwen2": 200, "llama": 60}
    info = {family: build_local_model(root / family, family, problems, shape=shape, pretrain_steps=n, batch_size=16,
                                      lr=5e-3) for family, n in steps.items()}
    return {"root": root, "data": write_gsm8k_jsonl(problems, root / "gsm8k.jsonl"), "source": source, **info}


def test_folders_are_shaped_like_hub_downloads(hub_models):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from pvg.data.tokenizer import load_tokenizer
    from pvg.game.generation import stop_token_ids

    for family, arch, eot in (("qwen2", "Qwen2ForCausalLM", "<|im_end|>"), ("llama", "LlamaForCausalLM", "<|eot_id|>")):
        path = Path(hub_models[family]["path"])
        assert AutoConfig.from_pretrained(path).architectures == [arch]
        cfg = json.loads((path / "tokenizer_config.json").read_text())
        assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and "pad_token" not in cfg
        raw = AutoTokenizer.from_pretrained(path)  # 5.x's Qwen2Tokenizer pads with <|endoftext|> unasked, as for Qwen
        assert raw.pad_token in (None, raw.eos_token) and raw.eos_token != eot and eot in raw.get_vocab()
        prompt = raw.apply_chat_template([{"role": "system", "content": "SYS"}, {"role": "user", "content": "Q?"}],
                                         tokenize=False, add_generation_prompt=True)
        assert "SYS" in prompt and prompt.index("SYS") < prompt.index("Q?")
        tok = load_tokenizer(path)  # a tokenizer with no pad token pads with EOS
        assert tok.pad_token_id == tok.eos_token_id
        gen = GenerationConfig.from_pretrained(path)
        assert tok.convert_tokens_to_ids(eot) in gen.eos_token_id
        # the end of turn is found from the chat template alone, for a model whose generation_config lists only EOS
        assert tok.convert_tokens_to_ids(eot) in stop_token_ids(tok, None)


def test_sampling_uses_the_chat_template_and_stops_at_end_of_turn(hub_models):
    from pvg.data.roles import SYSTEM_PROMPTS, prover_prompt
    from pvg.data.tokenizer import load_tokenizer
    from pvg.game.generation import generate
    from pvg.game.models import load_causal_lm

    path = hub_models["qwen2"]["path"]
    tok, model = load_tokenizer(path), load_causal_lm(path)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    question = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    prompts = [prover_prompt(tok, question, role, tiny=False) for role in ("helpful", "sneaky")] * 4
    assert SYSTEM_PROMPTS["sneaky"] in prompts[1] and prompts[1].startswith("<|im_start|>system\n")
    samples = generate(model, tok, prompts, max_new_tokens=MAX_NEW_TOKENS, seed=0)
    finished = [s for s in samples if s.finished]
    assert finished, "the pretrained folder ends some solutions by itself"
    stops = {eot, tok.eos_token_id}  # a chat model may also end a turn with EOS (<|endoftext|>), as Qwen's do
    for s in finished:
        assert s.response_ids[-1] in stops and not stops & set(s.response_ids[:-1])
        assert len(s.response_ids) < MAX_NEW_TOKENS
        assert "<|im_end|>" not in s.text and "<|im_start|>" not in s.text and "<|endoftext|>" not in s.text
    assert any(s.response_ids[-1] == eot for s in finished), "some stopped at the end-of-turn token, not EOS"


def test_sneaky_warm_start_rows_are_chat_conversations_with_planted_flaws(hub_models):
    from pvg.data.gsm8k_flaws import with_planted_flaws
    from pvg.data.problems import load_jsonl
    from pvg.data.roles import SYSTEM_PROMPTS
    from pvg.game.hub_warmstart import role_conversations

    problems = with_planted_flaws(load_jsonl(hub_models["data"]), ["wrong_operation", "misread_quantity"], 1, seed=0)
    rows = role_conversations(problems, sneaky_fraction=0.5, seed=0)
    by_role = {role: [r for r in rows if r["prompt"][0]["content"] == SYSTEM_PROMPTS[role]] for role in SYSTEM_PROMPTS}
    assert by_role["helpful"] and by_role["sneaky"]
    answers = {p.question: p for p in problems}
    for role, picked in by_role.items():
        for r in picked:
            p = answers[r["prompt"][1]["content"]]
            solution = r["completion"][0]["content"]
            assert [m["role"] for m in r["prompt"] + r["completion"]] == ["system", "user", "assistant"]
            assert solution == p.reference if role == "helpful" else solution in [f.text for f in p.flawed]


def test_pvg_warmstart_fine_tunes_a_hub_prover_on_both_roles(hub_models, tmp_path):
    """`pvg warmstart` with prover.model set: TRL SFT on helpful and planted-flaw sneaky solutions,
    each role sampled before and after, the result cached and its folder a hub-style one again."""
    from transformers import AutoModelForCausalLM

    config = game_config(hub_models, tmp_path, 1)
    steps = ["--set", "warmstart.hub_prover_steps=6", "--set", "warmstart.hub_lr=1e-3", "--set",
             "warmstart.prover_warmup_steps=1", "--set", "warmstart.eval_problems=4"]
    proc = subprocess.run(pvg_cmd("warmstart", str(config), *steps), capture_output=True, text=True, env=env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ws = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert ws["hub_sft_sneaky_examples"] > 0 and ws["hub_sft_examples"] > ws["hub_sft_sneaky_examples"]
    for key in ("sneaky_incorrect_rate", "helpful_pass_rate"):
        assert 0 <= ws[key] <= 1 and 0 <= ws[f"before_{key}"] <= 1
    assert "sneaky incorrect" in proc.stdout + proc.stderr and "→" in proc.stdout + proc.stderr
    prover = Path(ws["prover"])
    assert prover.parent.parent == tmp_path / "cache" and prover.name == "prover"
    assert type(AutoModelForCausalLM.from_pretrained(prover)).__name__ == "Qwen2ForCausalLM"
    assert json.loads((prover / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    again = subprocess.run(pvg_cmd("warmstart", str(config), *steps), capture_output=True, text=True, env=env(),
                           timeout=300)
    assert again.returncode == 0 and "reusing" in again.stdout + again.stderr
    lora = subprocess.run(pvg_cmd("warmstart", str(config), *steps, "--set", "prover.lora={r: 4, alpha: 8}"),
                          capture_output=True, text=True, env=env(), timeout=300)  # SFT through a LoRA adapter
    assert lora.returncode == 0, lora.stderr[-3000:]
    merged = Path(json.loads(lora.stdout[lora.stdout.index("{"):])["prover"])
    assert merged != prover and not (merged / "adapter_config.json").exists(), "saved merged, a plain model"
    assert type(AutoModelForCausalLM.from_pretrained(merged)).__name__ == "Qwen2ForCausalLM"


def game_config(hub_models, tmp_path: Path, actors: int) -> Path:
    cfg = {
        "run": {"name": f"hub-{actors}", "seed": 0, "out_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
        "data": {"source": "jsonl", "path": str(hub_models["data"])},
        "prover": {"model": hub_models["qwen2"]["path"], "max_new_tokens": MAX_NEW_TOKENS},
        "verifier": {"model": hub_models["llama"]["path"], "train_steps": 6, "batch_pairs": 4, "max_length": 320,
                     "solutions_per_problem": 2},
        "ppo": {"max_steps": 2, "problems_per_step": 2, "samples_per_problem": 2, "minibatch_size": 8, "epochs": 1},
        "game": {"max_rounds": 2, "stop_rule": "max_rounds", "pool_problems_per_round": 20, "pool_samples_per_role": 4,
                 "eval_problems": 6},
        "resources": {"prover": {"actors": actors, "cpus_per_actor": 1 / actors, "torch_threads": 1},
                      "verifier": {"actors": 1, "cpus_per_actor": 1, "torch_threads": 1}},
        "logging": {"progress": False, "tensorboard": False},
    }
    if actors == 2:  # a LoRA prover (pvg/game/lora.py) under DeepSpeed ZeRO-2: the adapter on each rank
        cfg["prover"]["lora"] = {"r": 4, "alpha": 8}
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("actors", [1, 2])
def test_two_rounds_on_hub_folders(hub_models, tmp_path, actors):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    config = game_config(hub_models, tmp_path, actors)
    proc = subprocess.run(pvg_cmd("train", str(config)), capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    engine = "DeepSpeed ZeRO-2 over gloo on cpu, fp32" if actors == 2 else "plain torch on cpu"
    assert f"prover: {actors} actor{'s' * (actors > 1)}, {engine}" in proc.stdout + proc.stderr, proc.stderr[-3000:]
    run = tmp_path / "runs" / f"hub-{actors}"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows if r["kind"] == "round"] == [0, 1]
    assert len([r for r in rows if r["kind"] == "ppo"]) == 4
    pool = pq.read_table(run / "pool" / "round-1.parquet").to_pylist()
    assert {r["role"] for r in pool} == {"helpful", "sneaky"}
    assert not any("<|im_end|>" in r["text"] or "<|endoftext|>" in r["text"] for r in pool)
    assert any(r["tokens"] < MAX_NEW_TOKENS for r in pool), "some solutions ended at the end-of-turn token"
    ckpt = run / "checkpoints" / "round-1"
    assert type(AutoModelForCausalLM.from_pretrained(ckpt / "prover")).__name__ == "Qwen2ForCausalLM"
    verifier = AutoModelForSequenceClassification.from_pretrained(ckpt / "verifier")
    assert type(verifier).__name__ == "LlamaForSequenceClassification" and verifier.config.num_labels == 1
    for which in ("prover", "verifier"):
        assert json.loads((ckpt / which / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    from pvg.export.hf import export_prover, export_verifier
    from pvg.export.scoring import Row, load_verifier, score_rows

    if actors == 2:  # LoRA: the merged model above, the adapter beside it, and an export of the adapter alone
        from peft import PeftModel

        assert (ckpt / "prover" / "adapter" / "adapter_model.safetensors").is_file()
        out = tmp_path / "export-adapter"
        meta = export_prover(run, out, adapter_only=True)
        assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
        assert meta["adapter"]["base"] in (ckpt / "prover" / "adapter" / "adapter_config.json").read_text()
        assert "PeftModel.from_pretrained" in (out / "README.md").read_text()
        on_base = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(meta["adapter"]["base"]), out).eval()
        whole = AutoModelForCausalLM.from_pretrained(ckpt / "prover").eval()
        ids = AutoTokenizer.from_pretrained(out)("Tom has 3 apples.", return_tensors="pt")["input_ids"]
        with torch.no_grad():  # base + adapter is the merged checkpoint
            assert torch.allclose(on_base(ids).logits, whole(ids).logits, atol=1e-4)
        return  # the other exports read checkpoints, which are the same files for one actor or two
    from typer.testing import CliRunner

    from pvg.cli import app

    refused = CliRunner().invoke(app, ["export-prover", str(run), "-o", str(tmp_path / "x"), "--adapter-only"])
    assert_user_error(refused, "has no LoRA adapter", "leave out --adapter-only")

    export_prover(run, tmp_path / "export-prover")  # in this process: the CLI around them is tested elsewhere
    export_verifier(run, tmp_path / "export-verifier")
    for which in ("prover", "verifier"):
        out = tmp_path / f"export-{which}"
        assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
        AutoTokenizer.from_pretrained(out)
    meta = json.loads((tmp_path / "export-prover" / "pvg_prover.json").read_text())
    assert meta["prompt"]["style"] == "chat" and "<|im_end|>" in meta["generation"]["stop_tokens"]
    assert meta["loads_with"]["tokenizer_class"] == "PreTrainedTokenizerFast"
    verifier = load_verifier(tmp_path / "export-verifier", device="cpu")
    row = Row("test:1", {"question": "Tom has 3 apples.", "solution": "3+4=<<3+4=7>>7\n#### 7"})
    (score,) = score_rows(verifier, [row], batch_size=4, progress=False)
    assert isinstance(score, float) and score == score
