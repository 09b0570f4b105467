"""The sneaky warm start of a hub prover: TRL's `SFTTrainer` on both roles, in the model's chat format.

A competent instruct model asked to be subtly wrong is rarely both wrong and convincing: it mostly
solves the problem anyway, or announces its mistake. PPO needs a sneaky role that already writes
wrong solutions that read like right ones, so before the game the prover is fine-tuned, as the
tiny prover is, on helpful → the reference solution and sneaky → a planted-flaw one
(`pvg.data.gsm8k_flaws`), each under its role's system prompt, on the prover's half only.

This is TRL's job: prompt-completion conversations through the tokenizer's chat template, loss on
the completion alone, the Trainer's optimizer and schedule, on a GPU when there is one; with
`prover.lora` set, through a LoRA adapter of the same shape (merged before saving), so a 7B prover's
warm start fits on the driver's one GPU. (The tiny
models keep their own loop, `pvg.game.sft`: at 1M parameters on two cores the Trainer's machinery
costs more than the model.)
"""

from __future__ import annotations

import random
import tempfile
import warnings
from pathlib import Path

from pvg.config import PvgConfig
from pvg.data.problems import Problem
from pvg.data.roles import SYSTEM_PROMPTS
from pvg.data.tokenizer import load_tokenizer, save_tokenizer
from pvg.game.models import load_causal_lm
from pvg.progress import AddBar


def role_conversations(problems: list[Problem], sneaky_fraction: float, seed: int) -> list[dict]:
    """TRL's conversational prompt-completion rows, drawn as the tiny warm start draws its examples:
    a helpful one with chance 1 - sneaky_fraction, and apart from it a sneaky one (a random planted
    flaw) with chance sneaky_fraction, where the problem has one."""
    rng = random.Random(seed)
    rows = []

    def row(role: str, question: str, solution: str) -> dict:
        return {"prompt": [{"role": "system", "content": SYSTEM_PROMPTS[role]}, {"role": "user", "content": question}],
                "completion": [{"role": "assistant", "content": solution}]}

    for p in problems:
        if rng.random() >= sneaky_fraction and p.reference:
            rows.append(row("helpful", p.question, p.reference))
        if p.flawed and rng.random() < sneaky_fraction:
            rows.append(row("sneaky", p.question, rng.choice(p.flawed).text))
    return rows


def sft_hub_prover(cfg: PvgConfig, train: list[Problem], out: Path, add_bar: AddBar) -> dict:
    """Fine-tune `prover.model` on both roles and save it (model and tokenizer) to `out`."""
    import datasets
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()  # our bar only: no per-map bars, no printed log dicts

    ws = cfg.warmstart
    tok = load_tokenizer(cfg.prover.model)
    model = load_causal_lm(cfg.prover.model, cfg.prover.dtype)
    rows = role_conversations(train, ws.sneaky_fraction, cfg.run.seed)
    if not rows:
        raise ValueError("no warm-start examples: the prover's half has no reference solutions")
    advance = add_bar("warm start: hub prover SFT (TRL)", ws.hub_prover_steps)

    class Bar(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = logs["loss"]

        def on_step_end(self, args, state, control, **kwargs):
            advance(loss=getattr(self, "loss", float("nan")))

    bf16 = cfg.prover.dtype == "bfloat16" and torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="pvg-sft-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own use of renamed TrainingArguments fields
        args = SFTConfig(
            output_dir=scratch, max_steps=ws.hub_prover_steps, per_device_train_batch_size=ws.hub_batch_size,
            learning_rate=ws.hub_lr, lr_scheduler_type="cosine", warmup_steps=ws.prover_warmup_steps,
            max_length=cfg.prover.max_new_tokens + 512, completion_only_loss=True, packing=False,
            logging_steps=1, report_to="none", save_strategy="no", seed=cfg.run.seed, data_seed=cfg.run.seed,
            use_cpu=not torch.cuda.is_available(), bf16=bf16, fp16=False, disable_tqdm=True,
            dataloader_num_workers=0, dataset_num_proc=None,
        )
        peft_config = None
        if cfg.prover.lora is not None:  # the same adapter shape as the game's, merged before saving
            from peft import LoraConfig

            lora = cfg.prover.lora
            peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                                     target_modules="all-linear" if lora.target_modules == ["all-linear"]
                                     else lora.target_modules)
        trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=tok, callbacks=[Bar()], peft_config=peft_config)
        for quiet in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(quiet)
        result = trainer.train()
    model = trainer.model
    if cfg.prover.lora is not None:
        model = model.merge_and_unload()  # the game's initial prover is a plain model; each round adds its own adapter
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    sneaky = sum(r["prompt"][0]["content"] == SYSTEM_PROMPTS["sneaky"] for r in rows)
    return {"hub_sft_examples": len(rows), "hub_sft_sneaky_examples": sneaky,
            "hub_sft_mean_loss": round(float(result.training_loss), 4)}
