"""Ray actors that hold the models: one class per model role, placement explicit (OpenRLHF's pattern).

The driver never holds weights: it sends questions, roles, seeds and scores, and gets back text and
numbers. Each group asks Ray for its own CPUs/GPUs through a placement group, so a config that asks
for more than the cluster has fails fast with what was asked and what exists instead of hanging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from pvg.config import GroupResources, PPOConfig, ProverConfig, VerifierConfig
from pvg.errors import PvgError


def _device(gpus: float) -> torch.device:
    return torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")


def _setup_torch(cpus: float) -> None:
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.use_deterministic_algorithms(True, warn_only=True)
    from pvg.models import quiet_libraries

    quiet_libraries()


class ProverActor:
    """Policy (+ value head) being trained, and the frozen initial prover as the KL reference."""

    def __init__(self, init_path: str, tokenizer_path: str, cfg: ProverConfig, ppo: PPOConfig, tiny: bool, cpus: float, gpus: float):
        _setup_torch(cpus)
        from pvg.models import load_causal_lm
        from pvg.tokenizer import load_tokenizer

        self.init_path, self.cfg, self.ppo_cfg, self.tiny = init_path, cfg, ppo, tiny
        self.device = _device(gpus)
        self.tok = load_tokenizer(tokenizer_path)
        self.ref = load_causal_lm(init_path, cfg.dtype).to(self.device).eval()
        for p in self.ref.parameters():
            p.requires_grad_(False)
        self.policy = None
        self.trainer = None
        self._last = None

    def reset(self, seed: int) -> None:
        """Back to the initial prover's weights, a fresh value head and optimizer."""
        from pvg.models import load_causal_lm
        from pvg.ppo import PPOTrainer

        self.policy = load_causal_lm(self.init_path, self.cfg.dtype).to(self.device)
        self.trainer = PPOTrainer(self.policy, self.ref, self.ppo_cfg, seed, temperature=self.cfg.temperature)

    def load(self, path: str) -> None:
        from pvg.models import load_causal_lm

        self.policy = load_causal_lm(path, self.cfg.dtype).to(self.device)
        self.trainer = None

    def save(self, path: str) -> None:
        _save_atomic(self.policy, self.tok, Path(path))

    def sample(self, questions: list[str], roles: list[str], seed: int, greedy: bool = False) -> list[dict]:
        from pvg.generation import generate
        from pvg.roles import prover_prompt

        prompts = [prover_prompt(self.tok, q, r, self.tiny) for q, r in zip(questions, roles)]
        samples = generate(self.policy, self.tok, prompts, max_new_tokens=self.cfg.max_new_tokens,
                           temperature=self.cfg.temperature, top_p=self.cfg.top_p, greedy=greedy, seed=seed,
                           calculator=self.cfg.calculator)
        self._last = samples
        return [{"text": s.text, "tokens": len(s.response_ids), "finished": s.finished} for s in samples]

    def ppo_update(self, scores: list[float]) -> dict:
        """One PPO update on the episodes of the last `sample` call, with the game's rewards."""
        from pvg.ppo import pad_episodes

        if self._last is None or len(self._last) != len(scores):
            raise RuntimeError("ppo_update needs the scores of the last sample() call, in order")
        batch = pad_episodes([s.prompt_ids for s in self._last], [s.response_ids for s in self._last],
                             self.tok.pad_token_id, scores, [s.forced for s in self._last])
        batch = _to(batch, self.device)
        return self.trainer.update(batch)


class VerifierActor:
    """Re-initialized from its base weights every round, trained on the pool, then scores solutions."""

    def __init__(self, base_path: str, tokenizer_path: str, cfg: VerifierConfig, cpus: float, gpus: float):
        _setup_torch(cpus)
        from pvg.tokenizer import load_tokenizer

        self.base_path, self.cfg = base_path, cfg
        self.device = _device(gpus)
        self.tok = load_tokenizer(tokenizer_path)
        self.model = None

    def reset(self, seed: int) -> None:
        from pvg.models import load_verifier

        self.model = load_verifier(self.base_path, self.tok.pad_token_id, self.cfg.dtype, seed).to(self.device)

    def load(self, path: str) -> None:
        from pvg.models import load_verifier

        self.model = load_verifier(path, self.tok.pad_token_id, self.cfg.dtype).to(self.device)

    def save(self, path: str) -> None:
        _save_atomic(self.model, self.tok, Path(path))

    def train(self, pairs: list[tuple[str, str]], seed: int) -> dict:
        from pvg.verifier_train import Pair, train_verifier

        c = self.cfg
        return train_verifier(self.model, self.tok, [Pair(a, b) for a, b in pairs], steps=c.train_steps,
                              batch_pairs=c.batch_pairs, lr=c.lr, center_coef=c.center_coef,
                              max_length=c.max_length, seed=seed)

    def score(self, texts: list[str]) -> list[float]:
        from pvg.verifier_train import score_texts

        return score_texts(self.model, self.tok, texts, self.cfg.max_length)


def _to(batch, device):
    for f in ("input_ids", "attention_mask", "mask", "scores", "action_mask"):
        if getattr(batch, f) is not None:
            setattr(batch, f, getattr(batch, f).to(device))
    return batch


def _save_atomic(model, tok, path: Path) -> None:
    """Hugging Face folder (safetensors), written next to its place and renamed: never half a checkpoint."""
    import shutil

    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


@dataclass
class Group:
    """A placement group and the actors placed in it."""

    name: str
    pg: object
    actors: list

    def remove(self) -> None:
        for a in self.actors:
            ray.kill(a)
        remove_placement_group(self.pg)


def check_supported(resources) -> None:
    """Fail before any training starts, not after the warm start, for what this version can't place."""
    for name in ("prover", "verifier"):
        res = getattr(resources, name)
        if res.actors != 1:
            raise PvgError(
                f"resources.{name}.actors={res.actors}: this version trains each group on one actor "
                f"(multi-actor DeepSpeed groups are not built yet); set resources.{name}.actors=1"
            )


def make_group(name: str, cls, res: GroupResources, strategy: str, timeout_s: float, *args) -> Group:
    bundle = {"CPU": res.cpus_per_actor}
    if res.gpus_per_actor:
        bundle["GPU"] = res.gpus_per_actor
    pg = placement_group([bundle] * res.actors, strategy=strategy, name=f"pvg-{name}")
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        have = ray.cluster_resources()
        raise PvgError(
            f"resources.{name}: asked Ray for {res.actors} x {bundle} ({strategy}) but the cluster has "
            f"CPU={have.get('CPU', 0):g}, GPU={have.get('GPU', 0):g} in all (some may be held by the other group); "
            "lower resources.*.cpus_per_actor / gpus_per_actor or add nodes"
        )
    remote = ray.remote(cls)
    actors = [
        remote.options(
            num_cpus=res.cpus_per_actor,
            num_gpus=res.gpus_per_actor,
            scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i),
        ).remote(*args, res.cpus_per_actor, res.gpus_per_actor)
        for i in range(res.actors)
    ]
    return Group(name, pg, actors)
