"""Runs the game's rounds and owns the run folder (docs/design.md, "One round").

Phases, each checkpointed and recorded in `state.json` when done: `initial` (the warm-started
prover's samples seed the pool), then per round K: `K/verifier`, `K/prover`, `K/sample`, `K/eval`.
A resumed run skips finished phases (loading their checkpoints) and re-runs an unfinished one from
its start; every random draw is seeded from (seed, round, phase, step), so the re-run is the same.
The run folder may be a URI (`s3://bucket/runs/NAME`): the driver then works in a local mirror of it
and uploads as it goes (`pvg.run.storage`, `pvg.run.folder`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from pvg.run import storage
from pvg.game.actors import check_cluster, place_groups
from pvg.config import GameConfig, PvgConfig, check_resume_keys, load_config
from pvg.data.dataset import load_split
from pvg.errors import PvgError
from pvg.data.grading import extract_answer, is_correct, states_answer
from pvg.game.metrics import legibility_metrics
from pvg.game.pool import INITIAL, PoolRow, mixture_pairs, read_rounds, write_round
from pvg.progress import console, progress_bar
from pvg.game.exploit import ExploitWindow, batch_parts, decide
from pvg.game.rewards import compute_rewards, episode_roles, identical_group_share, leave_one_out
from pvg.data.roles import ROLES, verifier_text
from pvg.run.folder import RemoteLock, RunFolder, RunLock, resume_command
from pvg.game.warmstart import run_warmstart

ROUND_KEYS = [
    "round", "helpful_pass_rate", "sneaky_incorrect_rate", "verifier_auroc", "verifier_completeness",
    "verifier_soundness", "sneaky_fool_rate", "steps_to_exploit", "exploited", "kl_to_init",
    "helpful_mean_tokens", "sneaky_mean_tokens", "verifier_phase_s", "prover_phase_s",
]
# The round's KL to init is the mean of its last updates' estimates: one batch's k1 estimate is noisy
# (a correctness-only round read 0.00 on its last batch: docs/results.md#the-legibility-tax-from-a-weaker-warm-start-seeds-0-and-1).
KL_BATCHES = 10


@dataclass(frozen=True)
class PhaseBatch:
    """A prover-phase batch: episodes as (problem, role), the prover's samples, and what the rewards
    and the exploit test read of them."""

    episodes: list[tuple]
    roles: list[str]
    samples: list[dict]
    sample_s: float
    correct: list[bool]
    scores: list[float]
    answered: list[bool]


def pool_episodes(problems: list, round_: int, game) -> list[tuple]:
    """(problem, role, sample) for a pool: every role each round, the initial pool's roles as
    configured (`game.initial_pool_roles`): in the paper round 0's verifier learns from the initial
    prover's own attempts, before any sneaky training; our sneaky warm start already plants flaws."""
    roles = [r for r in ROLES if round_ != INITIAL or r in game.initial_pool_roles]
    return [(p, role, i) for p in problems for role in roles for i in range(game.pool_samples_per_role)]


def seed_for(*parts) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (checked first: nothing listening there fails in seconds, not after
    Ray's minutes of retries), or start a local Ray of its own that listens on loopback only. Ray's own
    log lines below ERROR stay out of the terminal: pvg says what matters itself."""
    if ray.is_initialized():
        return
    import logging

    kwargs = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=True, logging_level=logging.ERROR,
                  runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    if address:
        probe_ray_address(address)
        ray.init(address=address, **kwargs)
    else:
        with _loopback_only():
            # "local", not None: None joins whatever cluster the machine's last `ray start` recorded in
            # /tmp/ray/ray_current_cluster, and a dead one there left `pvg train` waiting for good
            ray.init(address="local", num_cpus=num_cpus, dashboard_host="127.0.0.1", **kwargs)


RAY_CONNECT_TIMEOUT_S = 10.0


def probe_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A PvgError within `timeout` seconds when nothing accepts a TCP connection at `address` (HOST:PORT,
    or ray://HOST:PORT); `auto` and `local` are Ray's to resolve."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise PvgError(f"--address {address!r}: expected HOST:PORT, the head node's GCS (e.g. 10.0.0.5:6379), or "
                       "ray://HOST:10001 (Ray Client)")
    try:
        conn = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise PvgError(f"cannot reach a Ray cluster at {address} ({why}; gave up after at most {timeout:g}s): is "
                       f"`ray start --head` running on {host}, and is port {port} open from this machine? "
                       "(--address / RAY_ADDRESS; leave both unset to start a local Ray)") from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", "") and not _speaks_grpc(conn):
            raise PvgError(f"{address} accepts connections but is no Ray GCS (nor Ray Client) server: it gave no "
                           f"gRPC handshake (waited at most {timeout:g}s). Give the head node's GCS port (`ray start "
                           "--head` prints it, default 6379) or ray://HOST:10001; the dashboard's 8265 is for "
                           "`pvg submit`")


def _speaks_grpc(conn) -> bool:
    """Ray's GCS and Client servers are gRPC, which answers HTTP/2's connection preface with a SETTINGS
    frame. Without this check a port that accepts and never answers (another server, a wedged head)
    left `ray.init` waiting for minutes with no error."""
    try:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except OSError:  # a timeout, or a reset by a server that refuses the bytes
        return False
    return len(head) == 9 and head[3] == 0x04  # frame header: 3 bytes length, 1 byte type (4 = SETTINGS)


class _loopback_only:
    """A local Ray whose servers (GCS, raylet, agents, workers) bind 127.0.0.1 only. Ray replaces a
    loopback `_node_ip_address` with the machine's outside address on Linux; its own rule for
    machines that are not cluster nodes (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) keeps loopback, and
    its servers bind the node address they are given. Only while Ray starts; a cluster is unchanged."""

    def __enter__(self):
        from ray._private import ray_constants

        self._env = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
        self._flag = ray_constants.ENABLE_RAY_CLUSTER
        os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        return self

    def __exit__(self, *exc):
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = self._flag
        if self._env is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = self._env
        return False


class Orchestrator:
    def __init__(self, cfg: PvgConfig, run_dir: str | Path, *, resume: bool = False, address: str | None = None,
                 progress: bool = True, saved_cfg: PvgConfig | None = None):
        self.cfg, self.address, self.progress = cfg, address, progress and cfg.logging.progress
        self.saved_cfg = saved_cfg  # a resumed run's config.yaml as it was, when --set changed it
        if storage.is_uri(run_dir):  # a scheme with no installed file system fails here, before Ray starts
            mirror = storage.Mirror(str(run_dir), "run")
            self.rf = RunFolder(mirror.root, mirror)
        else:
            self.rf = RunFolder(Path(run_dir))
        self.resume = resume
        self._preflight_sides = None  # the problems split before Ray starts (_preflight), reused by the game
        self.tb = None
        self.wandb = None

    # ------------------------------------------------------------------ set-up
    @classmethod
    def for_resume(cls, run_dir: str | Path, overrides: list[str] | None = None, **kw) -> "Orchestrator":
        """A run continued with its own config.yaml; `overrides` may change only when the game ends
        (`pvg.config.RESUME_SETTABLE`), never what earlier rounds were made with."""
        overrides = list(overrides or [])
        check_resume_keys(overrides)
        if storage.is_uri(run_dir):
            saved, cfg = _remote_config(str(run_dir), overrides)
        else:
            rf = RunFolder(run_dir)
            if not rf.config_path.is_file():
                raise PvgError(f"{run_dir} is not a pvg run folder (no config.yaml); start a run with `pvg train CONFIG`")
            saved, cfg = _saved_and_resumed(rf.config_path, overrides)
            rf.check_readable()  # a damaged file fails here, before Ray starts and before anything is written
        return cls(cfg, run_dir, resume=True, saved_cfg=saved if cfg != saved else None, **kw)

    def _prepare_folder(self) -> None:
        rf = self.rf
        if rf.mirror:  # checked in _prepare_remote, before Ray; staged in _stage, after the lock
            return
        if not self.resume:
            if self._check_new_folder():
                console.print(f"run folder {rf.path} holds only an earlier start that finished no phase; "
                              "starting afresh in it", highlight=False, soft_wrap=True, markup=False)
            rf.path.mkdir(parents=True, exist_ok=True)
            rf.write_text("config.yaml", self.cfg.to_yaml())

    def _check_new_folder(self) -> bool:
        """A new local run's folder is free: missing, empty, or (True) left by a start that finished no phase."""
        rf = self.rf
        if not (rf.path.exists() and any(rf.path.iterdir())):
            return False
        if rf.failed_start():
            return True
        raise PvgError(f"run folder {rf.path} already exists; resume it with `pvg train --resume {rf.path}` "
                       "or pick another run.name / --run-dir")

    def _preflight(self) -> None:
        """Before Ray starts and before anything is written: whatever the config alone can refuse, so a
        refused start leaves no folder behind (`pvg train` run again with the fix just works)."""
        from pvg.game.warmstart import check_warmstart

        cfg = self.cfg
        if self.address and not ray.is_initialized():
            probe_ray_address(self.address)  # a cluster that is not there: seconds, and before anything else
        if not self.resume and not self.rf.mirror:
            self._check_new_folder()
        check_warmstart(cfg)
        if cfg.data.source != "hub":  # a hub dataset is loaded once, by the run itself
            self._preflight_sides = load_split(cfg.data, cfg.run.seed)
            for side, probs in self._preflight_sides.items():
                if len(probs) < 2:
                    raise PvgError(f"the {side} side has {len(probs)} problems; raise data.num_problems")
        if cfg.logging.wandb:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise PvgError("logging.wandb=true needs Weights & Biases: pip install 'pvg[wandb]'") from None

    def _prepare_remote(self) -> None:
        """Before Ray and the warm start: the storage is writable (a probe), and a new run's folder
        is free, so a wrong bucket or missing credentials cost seconds, not a warm start."""
        uri = self.rf.location
        storage.probe(uri)
        if not self.resume and storage.list_files(uri):
            raise PvgError(f"run folder {uri} already exists; resume it with `pvg train --resume {uri}` "
                           "or pick another run.name / --run-dir")

    def _stage(self) -> None:
        """After the lock, a URI run's local mirror: emptied, then the run's config (new) or the remote
        folder but its checkpoints, TensorBoard files and lock (resumed; actors load checkpoints
        themselves, and TensorBoard starts a new events file)."""
        rf = self.rf
        rf.mirror.reset()
        if self.resume:
            rf.mirror.pull(exclude=("checkpoints/", "tb/", ".lock", "eval/"))
            rf.check_readable()
        else:
            rf.write_text("config.yaml", self.cfg.to_yaml())
        console.print(f"run folder {rf.location}, staged in {rf.path}", highlight=False, soft_wrap=True)

    def _open_tb(self) -> None:
        if self.cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.rf.tb))
        if self.cfg.logging.wandb:
            try:
                import wandb
            except ImportError:
                raise PvgError("logging.wandb=true needs Weights & Biases: pip install 'pvg[wandb]'") from None
            self.wandb = wandb.init(project="pvg", name=self.rf.path.name, dir=str(self.rf.path),
                                    config=self.cfg.model_dump(mode="json"), resume="allow", id=self.rf.path.name)

    def _log_scalars(self, prefix: str, row: dict, step: int) -> None:
        """One tag per metric (`round/<metric>` at step K, `ppo/<metric>` at the run's PPO step); the
        row's indices (kind, round, step, updates) are the step axis, not metrics."""
        scalars = {}
        for k, v in row.items():
            if k in ("kind", "round", "step", "updates"):
                continue
            if isinstance(v, bool):
                scalars[f"{prefix}/{k}"] = int(v)
            elif isinstance(v, (int, float)) and v == v:
                scalars[f"{prefix}/{k}"] = v
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars)

    def _stop_cleanly_on_sigterm(self) -> None:
        """`pvg jobs stop`, Kubernetes and batch schedulers stop a run with SIGTERM: unwind as for
        Ctrl-C, so the lock is released and TensorBoard flushed; the unfinished phase is redone on resume."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            console.print(f"[yellow]stopped by SIGTERM[/]; continue with `{resume_command(self.rf.location)}`",
                          highlight=False, soft_wrap=True)
            raise SystemExit(143)

        signal.signal(signal.SIGTERM, handler)

    # ------------------------------------------------------------------ the game
    def run(self) -> dict:
        self._preflight()
        if self.rf.mirror:
            self._prepare_remote()
        # where to look, before Ray's start-up lines (a URI that cannot be used has failed already)
        console.print(f"run folder: {self.rf.location}{' (resumed)' if self.resume else ''}", highlight=False,
                      soft_wrap=True, markup=False)
        started_ray = not ray.is_initialized()
        start_ray(self.address)
        self._stop_cleanly_on_sigterm()  # after ray.init, which installs a handler of its own
        try:
            # a config the cluster cannot hold fails here: before the warm start and before any file is written
            check_cluster(self.cfg.resources)
            self._prepare_folder()
            if self.rf.mirror:
                lock = RemoteLock(self.rf.location, self.cfg.run.lock_stale_s)
            else:
                lock = RunLock(self.rf.path)
            lock.acquire()
            try:
                if self.rf.mirror:
                    self.rf.guard = lock.beat
                    self._stage()
                return self._run()
            finally:
                if self.tb is not None:
                    self.tb.close()
                if self.wandb is not None:
                    self.wandb.finish()
                self._final_upload()
                lock.release()
        finally:
            if started_ray:  # a local Ray this run started goes with it (a joined cluster stays up)
                ray.shutdown()

    def _final_upload(self) -> None:
        """The last TensorBoard events of a URI run; a failure here must not hide why the run ended."""
        try:
            self.rf.sync_tb()
        except PvgError as e:
            console.print(f"[yellow]warning:[/] {e}", highlight=False, soft_wrap=True)

    def _run(self) -> dict:
        cfg, rf = self.cfg, self.rf
        if self.saved_cfg is not None:
            self._apply_resume_settings()
        if rf.summary_path.is_file():
            summary = json.loads(rf.summary_path.read_text())  # readable: checked before Ray (check_readable)
            if not rf.lost_rounds():
                console.print(f"game already finished: {summary['stop_reason']}")
                return summary
            # a finished game whose round row was lost: the rounds are replayed from their records and
            # checkpoints, the lost one measured again, and the game ends as it did
        finished = set(rf.finished())
        rf.truncate_metrics(lambda r: f"{r['round']}/{'prover' if r['kind'] == 'ppo' else 'eval'}" in finished)
        ws = run_warmstart(cfg, progress=self.progress)
        rf.write_text("warmstart.json", json.dumps(ws.metrics, indent=2))
        self.sides = self._preflight_sides or load_split(cfg.data, cfg.run.seed)  # made once, before Ray
        for side, probs in self.sides.items():
            if len(probs) < 2:
                raise PvgError(f"the {side} side has {len(probs)} problems; raise data.num_problems")
        self._open_tb()

        tiny = cfg.prover.model is None
        self.prover, self.verifier, _ = place_groups(
            cfg.resources, (ws.prover, ws.prover_tokenizer, cfg.prover, cfg.ppo, cfg.deepspeed, tiny),
            (ws.verifier_base, ws.verifier_tokenizer, cfg.verifier))
        n_verifiers = len(self.verifier.actors)
        console.print(f"prover: {self.prover.describe()} · verifier: {n_verifiers} actor{'s' * (n_verifiers != 1)}"
                      f"{' (colocated with the prover)' if cfg.resources.colocate else ''}")

        if "initial" not in finished:
            self.prover.reset(seed_for(cfg.run.seed, "initial"))
            rows = self._sample_rows(self.sides["verifier"], INITIAL, "initial", scores_from=None)
            rf.publish(write_round(rf.pool, INITIAL, rows))
            rf.mark("initial")
        summary = None
        for k in range(cfg.game.max_rounds):
            row = self._round(k, finished)
            stop = stop_reason(cfg.game, cfg.ppo.max_steps, row, k)
            if stop:
                summary = self._finish(stop, k)
                break
        return summary

    def _round(self, k: int, finished: set[str]) -> dict:
        cfg, rf = self.cfg, self.rf
        if f"{k}/eval" in finished:
            row = next((r for r in rf.read_metrics() if r["kind"] == "round" and r["round"] == k), None)
            if row is not None:
                return row
            # the row was lost (a damaged line deleted by hand): measured again, seeded as the first time
            console.print(f"[yellow]warning:[/] {rf.metrics_path} has no row for round {k} although state.json lists "
                          f"its eval as finished; measuring round {k} again from its checkpoints", highlight=False,
                          soft_wrap=True)
        # 1. verifier phase
        t0 = time.time()
        if f"{k}/verifier" in finished:
            self.verifier.load(rf.ckpt_target(k, "verifier"))
            vstats = rf.phase_info(f"{k}/verifier")
        else:
            sources = [INITIAL] + list(range(k))
            rows = read_rounds(rf.pool, sources)
            pairs = mixture_pairs(rows, sources, cfg.verifier.solutions_per_problem, cfg.verifier.mixture,
                                  seed_for(cfg.run.seed, k, "mixture"))
            if not pairs:
                raise PvgError("the pool has no problem with both a correct and an incorrect solution; "
                               "the verifier has nothing to learn from (is the prover warm-started?)")
            self.verifier.reset(seed_for(cfg.run.seed, k, "verifier-init"))
            with progress_bar(f"round {k}: verifier", 1, self.progress) as advance:
                vstats = self.verifier.train([(p.chosen, p.rejected) for p in pairs], seed_for(cfg.run.seed, k, "verifier-train"))
                advance(loss=vstats["verifier_loss"])
            vstats["verifier_phase_s"] = round(time.time() - t0, 2)
            self.verifier.save(rf.ckpt_target(k, "verifier"))
            rf.mark(f"{k}/verifier", **vstats)
        # 2. prover phase
        if f"{k}/prover" in finished:
            self.prover.load(rf.ckpt_target(k, "prover"))
            pstats = rf.phase_info(f"{k}/prover")
        else:
            pstats = self._prover_phase(k)
            self.prover.save(rf.ckpt_target(k, "prover"))
            rf.mark(f"{k}/prover", **pstats)
        # 3. fresh samples of both roles on the verifier's half join the pool
        if f"{k}/sample" not in finished:
            rows = self._sample_rows(self.sides["verifier"], k, "game", scores_from=self.verifier)
            rf.publish(write_round(rf.pool, k, rows))
            rf.mark(f"{k}/sample")
        # 4. measure on held-out test problems
        row = self._evaluate(k, vstats, pstats)
        rf.append_metrics([row])
        rf.mark(f"{k}/eval")
        self._log_scalars("round", row, k)
        console.print(
            f"round {k}: helpful pass {row['helpful_pass_rate']:.0%} · sneaky incorrect {row['sneaky_incorrect_rate']:.0%}"
            f" · AUROC {row['verifier_auroc']:.3f} · fool rate {row['sneaky_fool_rate']:.0%} · "
            f"{'exploited after ' + str(row['steps_to_exploit']) + ' PPO steps' if row['exploited'] else 'no exploit'}"
            f" · KL {row['kl_to_init']:.2f} · {row['verifier_phase_s'] + row['prover_phase_s']:.0f}s"
        )
        return row

    def _problem_batch(self, problems, n: int, seed: int):
        rng = random.Random(seed)
        return rng.sample(problems, min(n, len(problems)))

    def _draw(self, k: int, n_problems: int, tag: str, step: int, rollout: bool = True) -> PhaseBatch:
        """A batch of the prover phase: `n_problems` of the prover's half, each sampled
        `ppo.samples_per_problem` times in every role the reward trains, graded and scored by this
        round's verifier. `tag` seeds it: the PPO batches ("ppo") and the exploit test's fresh
        batches ("exploit-confirm") are separate draws. `rollout=False` (a fresh batch) leaves the
        rollout the next PPO update reads on the prover actors."""
        cfg, ppo = self.cfg, self.cfg.ppo
        problems = self._problem_batch(self.sides["prover"], n_problems, seed_for(cfg.run.seed, k, f"{tag}-problems", step))
        episodes = [(p, role) for p in problems for role in episode_roles(ppo.reward)
                    for _ in range(ppo.samples_per_problem)]
        roles = [r for _, r in episodes]
        t_sample = time.time()
        samples = self.prover.sample([p.question for p, _ in episodes], roles, seed_for(cfg.run.seed, k, f"{tag}-sample", step),
                                     keep=rollout)
        sample_s = time.time() - t_sample
        return PhaseBatch(
            episodes, roles, samples, sample_s,
            correct=[is_correct(s["text"], p.answer) for s, (p, _) in zip(samples, episodes)],
            scores=self.verifier.score([verifier_text(p.question, s["text"]) for s, (p, _) in zip(samples, episodes)]),
            answered=[states_answer(s["text"]) for s in samples],
        )

    def _fresh_parts(self, k: int, step: int) -> tuple:
        """The exploit test's fresh batch (`pvg.game.exploit.decide`), drawn after `step` updates."""
        fresh = self._draw(k, self.cfg.ppo.exploit_confirm_problems, "exploit-confirm", step, rollout=False)
        return batch_parts(fresh.scores, fresh.correct, fresh.roles, fresh.answered)

    def _prover_phase(self, k: int) -> dict:
        cfg, ppo = self.cfg, self.cfg.ppo
        t0 = time.time()
        carry = cfg.game.prover_start == "last_round" and k > 0
        self.prover.reset(seed_for(cfg.run.seed, k, "prover-init"), self.rf.ckpt_target(k - 1, "prover") if carry else None)
        steps_to_exploit, last, kls = None, {}, []
        ppo_step0 = self.rf.ppo_steps_before(k)  # the rounds before this one, on TensorBoard's one PPO axis
        window = ExploitWindow(ppo.exploit_window, ppo.exploit_incorrect_rate)
        with progress_bar(f"round {k}: prover PPO", ppo.max_steps, self.progress) as advance:
            for step in range(ppo.max_steps):
                batch = self._draw(k, ppo.problems_per_step, "ppo", step)
                episodes, roles, samples = batch.episodes, batch.roles, batch.samples
                correct, scores, answered = batch.correct, batch.scores, batch.answered
                groups = [(p.id, r) for p, r in episodes]
                # the exploit test reads this batch, drawn by the policy after `step` updates: an
                # exploiting policy is not updated once more before the phase ends
                parts = batch_parts(scores, correct, roles, answered)
                check = ExploitWindow(1, ppo.exploit_incorrect_rate).add(*parts)  # this batch alone, logged
                # the window's test, then a fresh batch's; decide's time is the fresh batch's when drawn
                t_decide = time.time()
                verdict = decide(window, parts, (lambda: self._fresh_parts(k, step)) if ppo.exploit_confirm_problems
                                 else None)
                decide_s = time.time() - t_decide
                pooled, confirm, exploited = verdict.window, verdict.fresh, verdict.exploited
                rewards = compute_rewards(ppo.reward, scores, correct, roles, [p.id for p, _ in episodes],
                                          cgc_margin=ppo.cgc_margin, cgc_v0=ppo.cgc_v0, answered=answered)
                stats, update_s = {}, 0.0
                if not exploited:
                    t_update = time.time()
                    kl_coefs = None if ppo.sneaky_kl_coef is None else [
                        ppo.sneaky_kl_coef if r == "sneaky" else ppo.kl_coef for r in roles]
                    stats = self.prover.ppo_update(leave_one_out(rewards, groups) if ppo.advantage == "group" else rewards,
                                                   kl_coefs=kl_coefs)
                    update_s = time.time() - t_update
                last = {
                    "kind": "ppo", "round": k, "step": step + 1, "updates": step + (not exploited),
                    "reward_helpful": _mean(rewards, roles, "helpful"), "reward_sneaky": _mean(rewards, roles, "sneaky"),
                    "helpful_pass_rate": _mean([float(c) for c in correct], roles, "helpful"),
                    "helpful_identical_groups": identical_group_share([s["text"] for s in samples], groups, "helpful"),
                    "sneaky_identical_groups": identical_group_share([s["text"] for s in samples], groups, "sneaky"),
                    "sneaky_incorrect_rate": check.sneaky_incorrect_rate if "sneaky" in roles else None,
                    "sneaky_no_answer_rate": _mean([float(not a) for a in answered], roles, "sneaky"),
                    "sneaky_mean_score": _mean(scores, roles, "sneaky"),
                    "sneaky_incorrect_mean_score": check.sneaky_incorrect_score,
                    "helpful_correct_mean_score": check.helpful_correct_score,
                    "window_sneaky_incorrect_rate": pooled.sneaky_incorrect_rate if "sneaky" in roles else None,
                    "window_sneaky_incorrect_mean_score": pooled.sneaky_incorrect_score,
                    "window_helpful_correct_mean_score": pooled.helpful_correct_score,
                    "window_exploited": pooled.exploited,
                    # the fresh batch, drawn only when the window's test passed
                    **({} if confirm is None else {
                        "confirm_sneaky_incorrect_rate": confirm.sneaky_incorrect_rate,
                        "confirm_sneaky_incorrect_mean_score": confirm.sneaky_incorrect_score,
                        "confirm_helpful_correct_mean_score": confirm.helpful_correct_score,
                        "confirm_s": round(decide_s, 3)}),  # sampled and scored: what a confirmation costs
                    "exploited": exploited,
                    **stats,
                    # throughput: sampled tokens per second of sampling, and the update's wall time
                    "sample_s": round(batch.sample_s, 3), "update_s": round(update_s, 3),
                    "sample_tokens_per_s": round(sum(s["tokens"] for s in samples) / max(batch.sample_s, 1e-9), 1),
                }
                self.rf.append_metrics([last])  # live; rows of an unfinished phase are dropped on resume
                self._log_scalars("ppo", last, ppo_step0 + step + 1)
                shown = dict(reward_h=last["reward_helpful"], reward_s=last["reward_sneaky"], kl=stats.get("kl_to_init"))
                advance(**{key: v for key, v in shown.items() if v is not None})
                if exploited:
                    steps_to_exploit = step
                    break
                if stats.get("kl_to_init") is not None:
                    kls.append(stats["kl_to_init"])
        kl_to_init = sum(kls[-KL_BATCHES:]) / len(kls[-KL_BATCHES:]) if kls else None
        return {
            "steps_to_exploit": steps_to_exploit,
            "exploited": steps_to_exploit is not None,
            "ppo_steps": last.get("updates", 0),
            "kl_to_init": kl_to_init,
            "prover_phase_s": round(time.time() - t0, 2),
        }

    def _sample_rows(self, problems, round_: int, phase: str, scores_from) -> list[PoolRow]:
        cfg = self.cfg
        chosen = self._problem_batch(problems, cfg.game.pool_problems_per_round, seed_for(cfg.run.seed, round_, "pool"))
        episodes = pool_episodes(chosen, round_, cfg.game)
        with progress_bar(f"{'initial' if round_ == INITIAL else f'round {round_}'}: sample pool", 1, self.progress) as adv:
            samples = self.prover.sample([p.question for p, _, _ in episodes], [r for _, r, _ in episodes],
                                         seed_for(cfg.run.seed, round_, "pool-sample"))
            scores = [None] * len(episodes)
            if scores_from is not None:
                scores = scores_from.score([verifier_text(p.question, s["text"]) for s, (p, _, _) in zip(samples, episodes)])
            adv()
        return [
            PoolRow(problem_id=p.id, round=round_, role=role, question=p.question, text=s["text"],
                    answer=extract_answer(s["text"]), correct=is_correct(s["text"], p.answer), verifier_score=v,
                    phase=phase, sample=i, tokens=s["tokens"])
            for s, (p, role, i), v in zip(samples, episodes, scores)
        ]

    def _evaluate(self, k: int, vstats: dict, pstats: dict) -> dict:
        cfg = self.cfg
        problems = self._problem_batch(self.sides["test"], cfg.game.eval_problems, seed_for(cfg.run.seed, "eval"))
        episodes = [(p, role) for p in problems for role in ROLES]
        samples = self.prover.sample([p.question for p, _ in episodes], [r for _, r in episodes],
                                     seed_for(cfg.run.seed, k, "eval-sample"))
        scores = self.verifier.score([verifier_text(p.question, s["text"]) for s, (p, _) in zip(samples, episodes)])
        correct = [is_correct(s["text"], p.answer) for s, (p, _) in zip(samples, episodes)]
        roles = [r for _, r in episodes]
        metrics = legibility_metrics(scores, correct, roles, cfg.verifier.threshold)
        tokens = {r: [s["tokens"] for s, rr in zip(samples, roles) if rr == r] for r in ROLES}
        row = {
            "kind": "round", "round": k, **metrics,
            "steps_to_exploit": pstats.get("steps_to_exploit"), "exploited": pstats.get("exploited"),
            "ppo_steps": pstats.get("ppo_steps"), "kl_to_init": pstats.get("kl_to_init"),
            "helpful_mean_tokens": sum(tokens["helpful"]) / len(tokens["helpful"]),
            "sneaky_mean_tokens": sum(tokens["sneaky"]) / len(tokens["sneaky"]),
            "verifier_phase_s": vstats.get("verifier_phase_s"), "prover_phase_s": pstats.get("prover_phase_s"),
            "verifier_loss": vstats.get("verifier_loss"), "verifier_pair_acc": vstats.get("verifier_pair_acc"),
            "verifier_pairs": vstats.get("verifier_pairs"), "verifier_steps": vstats.get("verifier_steps"),
            "eval_solutions": len(samples),
        }
        return row

    def _apply_resume_settings(self) -> None:
        """Under the lock: the new game.max_rounds checked against the rounds already played and
        written to config.yaml. A game that ended only at the old round limit is reopened (its
        summary.json removed), so the loop plays on from the next round; one the stop rule ended
        stays finished, its config as it was."""
        cfg, rf = self.cfg, self.rf
        played = [r for r in rf.read_metrics() if r["kind"] == "round"]
        if len(played) > cfg.game.max_rounds:
            raise PvgError(f"game.max_rounds={cfg.game.max_rounds} is below the {len(played)} rounds this run has "
                           f"played; give at least {len(played)}")
        if rf.summary_path.is_file() and played:
            last = played[-1]
            if stop_reason(cfg.game, cfg.ppo.max_steps, last, last["round"]) is not None:
                return  # still over: `_run` says why
            rf.summary_path.unlink()
            if rf.mirror:
                storage.remove(rf.mirror.url("summary.json"))
            console.print(f"game reopened: it ended at game.max_rounds={self.saved_cfg.game.max_rounds} after round "
                          f"{last['round']}; playing up to {cfg.game.max_rounds} rounds")
        rf.write_text("config.yaml", cfg.to_yaml())

    def _finish(self, reason: str, k: int) -> dict:
        rounds = [r for r in self.rf.read_metrics() if r["kind"] == "round"]
        summary = {"stop_reason": reason, "rounds": len(rounds), "last_round": k,
                   "final": {key: rounds[-1].get(key) for key in ROUND_KEYS} if rounds else {}}
        self.rf.write_text("summary.json", json.dumps(summary, indent=2))
        console.print(f"[bold]game over:[/] {reason}")
        return summary


def _mean(values, roles, role: str) -> float | None:
    picked = [v for v, r in zip(values, roles) if r == role]
    return sum(picked) / len(picked) if picked else None


def stop_reason(game: GameConfig, ppo_max_steps: int, row: dict, k: int) -> str | None:
    """Why the game ends after round `k` (its metrics `row`), or None to play on.

    `no_exploit_and_fool_rate` (the paper's): the sneaky role neither exploited the verifier within
    the step limit nor fools it more often than the bar. `fool_rate`: the bar, once the attacker had
    its whole budget (a phase that ended in an exploit had it cut short, so it never counts).
    `max_rounds`: every game plays all its rounds. No rule ends a game before `game.min_rounds`
    rounds; the round limit always applies. A NaN fool rate (no sneaky solution was incorrect) never
    counts as below the bar.
    """
    fooled = row["sneaky_fool_rate"]
    below = fooled == fooled and fooled < game.fool_rate_bar and k + 1 >= game.min_rounds
    full_budget = not row["exploited"]
    if game.stop_rule == "no_exploit_and_fool_rate" and full_budget and below:
        return (f"round {k}: the sneaky prover no longer fools the verifier (no exploit in {ppo_max_steps} "
                f"PPO steps, fool rate {fooled:.1%} < {game.fool_rate_bar:.1%})")
    if game.stop_rule == "fool_rate" and full_budget and below:
        return f"round {k}: sneaky fool rate {fooled:.1%} < {game.fool_rate_bar:.1%} after a full {ppo_max_steps}-step attack"
    if k + 1 >= game.max_rounds:
        return f"reached game.max_rounds={game.max_rounds}"
    return None


def default_run_dir(cfg: PvgConfig) -> str | Path:
    if storage.is_uri(cfg.run.out_dir):
        return storage.join(cfg.run.out_dir, cfg.run.name)
    return Path(cfg.run.out_dir) / cfg.run.name


def _saved_and_resumed(path: Path, overrides: list[str]) -> tuple[PvgConfig, PvgConfig]:
    """A run's config.yaml as saved, and as the resume's `--set` overrides make it."""
    return load_config(path), load_config(path, overrides)


def _remote_config(uri: str, overrides: list[str]) -> tuple[PvgConfig, PvgConfig]:
    """A URI run's own config.yaml (saved, resumed), read once before anything is staged (the lock is
    not taken yet)."""
    text = storage.read_text(storage.join(uri, "config.yaml"))
    if text is None:
        raise PvgError(f"{uri} is not a pvg run folder (no config.yaml); start a run with `pvg train CONFIG`")
    with tempfile.TemporaryDirectory(prefix="pvg-config-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text)
        try:
            return _saved_and_resumed(path, overrides)
        except PvgError as e:
            raise type(e)(str(e).replace(str(path), storage.join(uri, "config.yaml"))) from None

