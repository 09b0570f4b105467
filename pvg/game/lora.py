"""LoRA for the prover (peft): a fresh adapter every round, the frozen reference the same weights with it off.

Full fine-tuning keeps two copies of a hub prover on each actor, the policy and the frozen initial
prover that the KL penalty compares with, plus AdamW's two moments of every weight. With LoRA the
base weights never change, so the reference is the policy itself with its adapter switched off:
one copy of the weights, optimizer state for the adapter alone. "Back to the warm-started prover"
at the start of each prover phase is a new adapter (LoRA's B starts at zero, so the new policy is
exactly the base), and a checkpoint is the merged model (what every reader of a run folder loads)
with the adapter beside it in `adapter/`.
"""

from __future__ import annotations

import torch

from pvg.config import LoraSettings


def with_fresh_adapter(base, cfg: LoraSettings, seed: int):
    """`base` wrapped in a new LoRA adapter (A drawn from `seed`, B zero): only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    target = cfg.target_modules if cfg.target_modules != ["all-linear"] else "all-linear"
    return get_peft_model(base, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                           target_modules=target, task_type="CAUSAL_LM", bias="none"))


class AdapterOff:
    """The KL reference: the policy's own base weights, its adapter disabled for the one forward pass."""

    def __init__(self, peft_model):
        self.model = peft_model

    @torch.no_grad()
    def __call__(self, **inputs):
        with self.model.disable_adapter():
            return self.model(**inputs)

    def eval(self) -> "AdapterOff":
        return self


def save_adapter(peft_model, folder) -> None:
    peft_model.save_pretrained(str(folder))


def merged(peft_model):
    """The base with the adapter folded into its weights (peft's merge_and_unload): a plain
    transformers model, what checkpoints hold and what samples after the phase."""
    return peft_model.merge_and_unload()
