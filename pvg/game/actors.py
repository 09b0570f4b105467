"""Ray actors that hold the models: one class per model role, placement explicit (OpenRLHF's pattern).

The driver never holds weights: it sends questions, roles, seeds and scores, and gets back text and
numbers, through `ProverGroup` and `VerifierGroup`, which shard each call over their actors. Each
group asks Ray for its own CPUs/GPUs through a placement group laid out by `pvg.game.placement`, checked
against the cluster first, so a config that asks for more than the cluster has fails at once with
what was asked and what exists instead of hanging.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray
import torch
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from pvg.run import storage
from pvg.data.tokenizer import save_tokenizer
from pvg.config import DeepSpeedConfig, PPOConfig, ProverConfig, ResourcesConfig, VerifierConfig
from pvg.errors import PvgError
# imported here, not where used: a Ray job's driver runs inside its working_dir, which a second node on the
# same machine may unpack again right after ray.init (docs/jobs.md); a lazy import then finds no file
from pvg.game.placement import check_fits, plan


def _device(gpus: float) -> torch.device:
    return torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")


def _setup_torch(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.use_deterministic_algorithms(True, warn_only=True)
    from pvg.game.models import quiet_libraries

    quiet_libraries()


class ProverActor:
    """Policy (+ value head) being trained, and the frozen initial prover as the KL reference.

    One rank of the prover group. With several ranks (or a GPU), `reset` wraps policy and value
    head in one DeepSpeed engine over the group's torch.distributed process group (NCCL on GPUs,
    gloo on CPU); each rank samples and trains on its own shard of every batch.
    """

    def __init__(self, init_path: str, tokenizer_path: str, cfg: ProverConfig, ppo: PPOConfig, ds: DeepSpeedConfig,
                 tiny: bool, rank: int, world_size: int, threads: int, gpus: float):
        _setup_torch(threads)
        from pvg.game.models import load_causal_lm
        from pvg.data.tokenizer import load_tokenizer

        self.init_path, self.cfg, self.ppo_cfg, self.ds_cfg, self.tiny = init_path, cfg, ppo, ds, tiny
        self.rank, self.world_size = rank, world_size
        self.device = _device(gpus)
        self.use_deepspeed = ds.use == "always" or (ds.use == "auto" and (world_size > 1 or self.device.type == "cuda"))
        self.tok = load_tokenizer(tokenizer_path)
        self.ref = None  # with LoRA the reference is the policy with its adapter off: no second copy
        if cfg.lora is None:
            self.ref = load_causal_lm(init_path, cfg.dtype).to(self.device).eval()
            for p in self.ref.parameters():
                p.requires_grad_(False)
        self.policy = None
        self.trainer = None
        self._last = None

    def engine(self) -> str:
        """What trains this rank, for the run's log: plain torch or DeepSpeed (stage, backend, precision)."""
        if not self.use_deepspeed:
            return f"plain torch on {self.device.type}"
        ds = deepspeed_config(self.ds_cfg, self.ppo_cfg, self.world_size, self.device)
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        return (f"DeepSpeed ZeRO-{self.ds_cfg.zero_stage} over {backend} on {self.device.type}, "
                f"{'bf16' if ds['bf16']['enabled'] else 'fp32'}")

    # ---- the process group
    def rendezvous_address(self) -> tuple[str, int]:
        """Rank 0's address and a free port on it, for every rank's init_process_group."""
        import socket

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def init_process_group(self, addr: str, port: int) -> None:
        import torch.distributed as dist

        # Ray shows each actor only its own GPUs, so its device is always local rank 0.
        os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        if self.device.type == "cuda":
            torch.cuda.set_device(0)
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=self.rank, world_size=self.world_size)

    # ---- weights
    def reset(self, seed: int, start: str | None = None) -> None:
        """Back to the initial prover's weights, or to the checkpoint `start` (a path or URI; the KL
        reference stays the initial prover), with a fresh value head and optimizer (every rank alike)."""
        from pvg.game.models import load_causal_lm
        from pvg.game.ppo import PPOTrainer

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        dtype = "float32" if self.use_deepspeed else self.cfg.dtype
        if start is None:
            self.policy = load_causal_lm(self.init_path, dtype)  # a folder or a hub id
        else:
            with storage.local_folder(start) as local:
                self.policy = load_causal_lm(str(local), dtype)
        self.policy.to(self.device)
        ref = self.ref
        if self.cfg.lora is not None:  # a fresh adapter (B = 0: exactly the initial prover) on the base
            from pvg.game.lora import AdapterOff, with_fresh_adapter

            self.policy = with_fresh_adapter(self.policy, self.cfg.lora, seed)
            ref = AdapterOff(self.policy)
        ds_config = deepspeed_config(self.ds_cfg, self.ppo_cfg, self.world_size, self.device) if self.use_deepspeed else None
        self.trainer = PPOTrainer(self.policy, ref, self.ppo_cfg, seed, temperature=self.cfg.temperature,
                                  world_size=self.world_size, deepspeed_config=ds_config)
        self.policy = self.trainer.policy

    def load(self, path: str) -> None:
        """A finished phase's checkpoint (a path, or a URI downloaded here first), for sampling only
        (a resumed run never trains it further)."""
        from pvg.game.models import load_causal_lm

        with storage.local_folder(path) as local:
            self.policy = load_causal_lm(str(local), self.cfg.dtype).to(self.device)
        self.trainer = None

    def save(self, path: str) -> None:
        """Rank 0 writes the Hugging Face folder; the others only take part in gathering ZeRO-3 shards.
        A LoRA policy is saved merged, its adapter in `adapter/`, and every rank samples from the merged
        model afterwards (the same weights, one matmul fewer)."""
        import shutil
        import tempfile

        if self.cfg.lora is not None and self.trainer is not None:
            from pvg.game.lora import merged, save_adapter

            adapter = tempfile.mkdtemp(prefix="pvg-adapter-") if self.rank == 0 else None
            try:
                if adapter:
                    save_adapter(self.policy, adapter)
                self.policy, self.trainer = merged(self.policy), None
                if adapter:
                    _save_atomic(self.policy, self.tok, path, adapter=Path(adapter))
            finally:
                if adapter:
                    shutil.rmtree(adapter, ignore_errors=True)
            return
        with self._full_weights():
            if self.rank == 0:
                _save_atomic(self.policy, self.tok, path)

    def _full_weights(self):
        """ZeRO-3 keeps 1/N of each weight per rank: gather them for sampling and saving (a collective,
        so every rank enters it once per call, even with nothing to sample)."""
        import contextlib

        if self.trainer is None or not self.use_deepspeed or self.ds_cfg.zero_stage < 3:
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.policy.parameters()), modifier_rank=None)

    # ---- rollouts and updates
    def sample(self, questions: list[str], roles: list[str], seed: int, greedy: bool = False,
               keep: bool = True) -> list[dict]:
        """`keep=False`: a draw that is not a rollout (the exploit test's fresh batch); the next
        `ppo_update` still reads the last kept one."""
        from pvg.game.generation import generate
        from pvg.data.roles import prover_prompt

        with self._full_weights():
            if not questions:
                if keep:
                    self._last = []
                return []
            prompts = [prover_prompt(self.tok, q, r, self.tiny) for q, r in zip(questions, roles)]
            samples = generate(self.policy, self.tok, prompts, max_new_tokens=self.cfg.max_new_tokens,
                               temperature=self.cfg.temperature, top_p=self.cfg.top_p, greedy=greedy, seed=seed,
                               calculator=self.cfg.calculator, calculator_answer=self.cfg.calculator_answer)
        if keep:
            self._last = samples
        return [{"text": s.text, "tokens": len(s.response_ids), "finished": s.finished} for s in samples]

    def ppo_update(self, scores: list[float], episodes: list[tuple] | None = None,
                   kl_coefs: list[float] | None = None) -> dict:
        """One PPO update on the episodes of the last `sample` call, with the game's rewards; or on
        given `episodes`, (prompt_ids, response_ids, forced) triples (an offline batch, a test's).
        `kl_coefs`: each episode's KL weight (its role's); default: `ppo.kl_coef` for all."""
        from pvg.game.ppo import pad_episodes

        if episodes is None:
            if self._last is None or len(self._last) != len(scores):
                raise RuntimeError("ppo_update needs the scores of the last sample() call, in order")
            episodes = [(s.prompt_ids, s.response_ids, s.forced) for s in self._last]
        if len(episodes) != len(scores):
            raise ValueError(f"{len(episodes)} episodes but {len(scores)} scores")
        batch = pad_episodes([e[0] for e in episodes], [e[1] for e in episodes], self.tok.pad_token_id, scores,
                             [e[2] for e in episodes], kl_coefs)
        batch = _to(batch, self.device)
        stats = self.trainer.update(batch)
        if self.device.type == "cuda":  # since reset(): sampling, the reference and the update all count
            stats["gpu_peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
        return stats


def deepspeed_config(ds: DeepSpeedConfig, ppo: PPOConfig, world_size: int, device: torch.device) -> dict:
    """The engine's config: our loop feeds it `ppo.grad_accum` micro-batches per minibatch share."""
    local = max(1, ppo.minibatch_size // world_size)
    micro = max(1, local // ppo.grad_accum)
    bf16 = ds.precision == "bf16" or (ds.precision == "auto" and device.type == "cuda")
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": ppo.grad_accum,
        "train_batch_size": micro * ppo.grad_accum * world_size,
        "gradient_clipping": ppo.max_grad_norm,
        "zero_optimization": {"stage": ds.zero_stage},
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,  # torch's AdamW with two param groups (policy, value head)
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class VerifierActor:
    """Re-initialized from its base weights every round, trained on the pool, then scores solutions.

    In a group of several, rank 0 trains (a 0.1M..0.5B model trains fastest on one device) and the
    others load its checkpoint; all of them score, each a shard of every batch.
    """

    def __init__(self, base_path: str, tokenizer_path: str, cfg: VerifierConfig, rank: int, world_size: int,
                 threads: int, gpus: float):
        _setup_torch(threads)
        from pvg.data.tokenizer import load_tokenizer

        self.base_path, self.cfg, self.rank = base_path, cfg, rank
        self.device = _device(gpus)
        self.tok = load_tokenizer(tokenizer_path)
        self.model = None
    def reset(self, seed: int) -> None:
        from pvg.game.models import load_verifier

        self.model = load_verifier(self.base_path, self.tok.pad_token_id, self.cfg.dtype, seed).to(self.device)

    def load(self, path: str) -> None:
        from pvg.game.models import load_verifier

        with storage.local_folder(path) as local:
            self.model = load_verifier(str(local), self.tok.pad_token_id, self.cfg.dtype).to(self.device)

    def save(self, path: str) -> None:
        _save_atomic(self.model, self.tok, path)

    def train(self, pairs: list[tuple[str, str]], seed: int) -> dict:
        from pvg.game.verifier_train import Pair, phase_steps, train_verifier

        c = self.cfg
        steps = phase_steps(len(pairs), c.train_steps, c.train_epochs, c.batch_pairs)
        return train_verifier(self.model, self.tok, [Pair(a, b) for a, b in pairs], steps=steps,
                              batch_pairs=c.batch_pairs, lr=c.lr, center_coef=c.center_coef,
                              max_length=c.max_length, seed=seed)

    def score(self, texts: list[str]) -> list[float]:
        from pvg.game.verifier_train import score_texts

        return score_texts(self.model, self.tok, texts, self.cfg.max_length)


def _to(batch, device):
    for f in ("input_ids", "attention_mask", "mask", "scores", "action_mask", "kl_coef"):
        if getattr(batch, f) is not None:
            setattr(batch, f, getattr(batch, f).to(device))
    return batch


def _save_atomic(model, tok, target: str, adapter: Path | None = None) -> None:
    """Hugging Face folder (safetensors), written next to its place and renamed: never half a checkpoint.

    A URI target (a run folder on an object store) is written to a local temporary folder on this
    actor's node and uploaded from there: the actor that saves is the one writer of its files,
    wherever the driver runs. An upload cut short is harmless: state.json, which the driver writes
    after this returns, is what makes a checkpoint part of the run.
    """
    import shutil
    import tempfile

    if storage.is_uri(target):
        with tempfile.TemporaryDirectory(prefix="pvg-ckpt-") as tmp:
            model.save_pretrained(tmp)
            save_tokenizer(tok, tmp)
            if adapter is not None:
                shutil.copytree(adapter, Path(tmp) / "adapter")
            storage.upload_tree(Path(tmp), target)
        return
    path = Path(target)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    save_tokenizer(tok, tmp)
    if adapter is not None:
        shutil.copytree(adapter, tmp / "adapter")
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous shards whose sizes differ by at most one."""
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        end = start + base + (i < extra)
        bounds.append((start, end))
        start = end
    return bounds


def shard_seed(seed: int, rank: int) -> int:
    """Rank 0 samples with the game's seed, so one actor reproduces the single-actor run exactly."""
    return seed if rank == 0 else (seed + 1_000_003 * rank) % 2**32


class ProverGroup:
    """The driver's handle on the prover actors: every call goes to all ranks, each with its shard."""

    def __init__(self, actors: list):
        self.actors = actors
        self._bounds: list[tuple[int, int]] | None = None

    def describe(self) -> str:
        n = len(self.actors)
        return f"{n} actor{'s' * (n != 1)}, {ray.get(self.actors[0].engine.remote())}"

    def connect(self) -> None:
        if len(self.actors) > 1:
            addr, port = ray.get(self.actors[0].rendezvous_address.remote())
            ray.get([a.init_process_group.remote(addr, port) for a in self.actors])

    def reset(self, seed: int, start: str | None = None) -> None:
        ray.get([a.reset.remote(seed, start) for a in self.actors])

    def load(self, path: str) -> None:
        ray.get([a.load.remote(path) for a in self.actors])

    def save(self, path: str) -> None:
        ray.get([a.save.remote(path) for a in self.actors])

    def sample(self, questions: list[str], roles: list[str], seed: int, greedy: bool = False,
               keep: bool = True) -> list[dict]:
        """`keep=False`: not a rollout; the next `ppo_update` reads the last kept draw (see the actor's)."""
        bounds = shard_bounds(len(questions), len(self.actors))
        if keep:
            self._bounds = bounds
        parts = ray.get([a.sample.remote(questions[s:e], roles[s:e], shard_seed(seed, r), greedy, keep)
                         for r, (a, (s, e)) in enumerate(zip(self.actors, bounds))])
        return [x for part in parts for x in part]

    def ppo_update(self, rewards: list[float], episodes: list[tuple] | None = None,
                   kl_coefs: list[float] | None = None) -> dict:
        """Each rank updates on its shard of the last `sample` call (or of `episodes`); the stats are
        reduced across ranks, so rank 0's are the whole batch's."""
        bounds = self._bounds if episodes is None else shard_bounds(len(episodes), len(self.actors))
        if bounds is None or bounds[-1][1] != len(rewards):
            raise RuntimeError("ppo_update needs the rewards of the last sample() call, in order")
        per_rank = ray.get([a.ppo_update.remote(rewards[s:e], None if episodes is None else episodes[s:e],
                                                None if kl_coefs is None else kl_coefs[s:e])
                            for a, (s, e) in zip(self.actors, bounds)])
        stats = dict(per_rank[0])
        if "gpu_peak_mem_gb" in stats:
            stats["gpu_peak_mem_gb"] = max(r["gpu_peak_mem_gb"] for r in per_rank)
        return stats


class VerifierGroup:
    """Rank 0 trains and saves; the other ranks load that checkpoint; every rank scores a shard."""

    def __init__(self, actors: list):
        self.actors = actors

    def reset(self, seed: int) -> None:
        ray.get(self.actors[0].reset.remote(seed))

    def train(self, pairs: list[tuple[str, str]], seed: int) -> dict:
        return ray.get(self.actors[0].train.remote(pairs, seed))

    def save(self, path: str) -> None:
        """Rank 0 writes the checkpoint, then the other ranks load it: all score with the same weights."""
        ray.get(self.actors[0].save.remote(path))
        ray.get([a.load.remote(path) for a in self.actors[1:]])

    def load(self, path: str) -> None:
        ray.get([a.load.remote(path) for a in self.actors])

    def score(self, texts: list[str]) -> list[float]:
        bounds = shard_bounds(len(texts), len(self.actors))
        parts = ray.get([a.score.remote(texts[s:e]) for a, (s, e) in zip(self.actors, bounds) if e > s])
        return [x for part in parts for x in part]


def alive_nodes() -> list[dict]:
    return [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]


def check_cluster(res: ResourcesConfig) -> None:
    """`resources.precheck`: refuse at once a config the connected Ray cluster's nodes cannot hold."""
    if res.precheck:

        address = ray.get_runtime_context().gcs_address
        check_fits(res, alive_nodes(), f"the Ray cluster at {address} (a local one counts this machine's cores)")


def place_groups(res: ResourcesConfig, prover_args: tuple, verifier_args: tuple) -> tuple[ProverGroup, VerifierGroup, list]:
    """Placement groups and actors for both groups, as `pvg.game.placement.plan` lays them out.

    Checked against the live cluster first (`resources.precheck`), so a config that cannot fit fails
    at once; otherwise the placement groups get `resources.placement_timeout_s` to become ready.
    Returns the groups and the placement groups (to remove at the end).
    """

    pl = plan(res)
    check_cluster(res)  # again: nodes may have gone since the run started
    pgs = {}
    for name, bundles in pl.bundles.items():
        clean = [{k: v for k, v in b.items() if v} for b in bundles]
        pg = placement_group(clean, strategy=pl.strategy, name=f"pvg-{name}")
        ready, _ = ray.wait([pg.ready()], timeout=res.placement_timeout_s)
        if not ready:
            for made in [*pgs.values(), pg]:
                remove_placement_group(made)
            have = ray.cluster_resources()
            raise PvgError(
                f"resources.{name}: asked Ray for {len(clean)} bundles {clean[0]} ({pl.strategy}) and waited "
                f"{res.placement_timeout_s:g}s (resources.placement_timeout_s); the cluster has CPU={have.get('CPU', 0):g}, "
                f"GPU={have.get('GPU', 0):g} in all, some maybe held by other jobs; lower resources.*.cpus_per_actor "
                "/ gpus_per_actor or add nodes"
            )
        pgs[name] = pg

    def spawn(cls, slots, args):
        remote = ray.remote(cls)
        return [remote.options(num_cpus=s.cpus, num_gpus=s.gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
            pgs[s.group], placement_group_bundle_index=s.bundle)).remote(*args, rank, len(slots), s.threads, s.gpus)
            for rank, s in enumerate(slots)]

    prover = ProverGroup(spawn(ProverActor, pl.slots["prover"], prover_args))
    verifier = VerifierGroup(spawn(VerifierActor, pl.slots["verifier"], verifier_args))
    prover.connect()
    return prover, verifier, list(pgs.values())
