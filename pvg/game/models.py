"""Model factory: a hub id or local path through `from_pretrained`, or a tiny Llama built from a config.

The tiny models are ordinary transformers Llama models, so everything downstream (saving as
safetensors, export, `AutoModel*.from_pretrained`) is the same code path as for a 7B hub model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from pvg.config import TinyModelConfig
from pvg.errors import PvgError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tiny_llama_config(tok, cfg: TinyModelConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        tie_word_embeddings=True,
        num_labels=1,
    )


def build_tiny_causal_lm(tok, cfg: TinyModelConfig, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(tok, cfg))


def load_causal_lm(path: str | Path, dtype: str = "float32") -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype])
    except (OSError, ValueError) as e:
        raise PvgError(f"could not load causal LM from {path}: {e}") from None


def load_verifier(path: str | Path, pad_token_id: int | None, dtype: str = "float32", seed: int = 0) -> PreTrainedModel:
    """A one-logit sequence classifier; from a causal LM checkpoint the score head starts fresh (seeded)."""
    torch.manual_seed(seed)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=DTYPES[dtype], pad_token_id=pad_token_id
        )
    except (OSError, ValueError) as e:
        raise PvgError(f"could not load verifier from {path}: {e}") from None
    model.config.pad_token_id = pad_token_id
    return model


def quiet_libraries() -> None:
    """Our own progress bars only: no per-load weight bars, no "newly initialized score head" notes
    (expected every round), no DeepSpeed "no GPU found" warning on CPU machines."""
    import os

    import transformers

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
