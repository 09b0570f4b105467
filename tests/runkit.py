"""Run folders made by hand with pvg's own writers (RunFolder, pool.write_round, a resolved config):
real files for the fault tests and the bad-input census (bench/census.py) to damage; and the mute
server both point commands at."""

from __future__ import annotations

import contextlib

from pathlib import Path

from pvg.config import load_config
from pvg.game.pool import INITIAL, PoolRow, write_round
from pvg.run.folder import RunFolder
from pvgrun import CONFIG

PHASES = ["initial"] + [f"{k}/{p}" for k in (0, 1) for p in ("verifier", "prover", "sample", "eval")]


def _round_row(k: int) -> dict:
    return {"kind": "round", "round": k, "helpful_pass_rate": 0.5 + k / 10, "sneaky_incorrect_rate": 0.4,
            "verifier_auroc": 0.7, "verifier_completeness": 0.6, "verifier_soundness": 0.8, "sneaky_fool_rate": 0.3,
            "steps_to_exploit": None, "exploited": False, "kl_to_init": 0.1, "helpful_mean_tokens": 30.0,
            "sneaky_mean_tokens": 31.0, "verifier_phase_s": 1.0, "prover_phase_s": 2.0, "verifier_threshold": 0.0}


def _pool_rows(round_: int) -> list[PoolRow]:
    return [PoolRow(problem_id=f"p{i}", round=round_, role=role, question=f"q{i}", text=f"step\n#### {i}",
                    answer=str(i), correct=(i + j) % 2 == 0, verifier_score=None if round_ == INITIAL else 0.1 * i,
                    phase="initial" if round_ == INITIAL else "game", sample=0, tokens=5)
            for i in range(6) for j, role in enumerate(("helpful", "sneaky"))]


def write_checkpoints(rf: RunFolder, rounds=(0, 1)) -> None:
    """Each round's prover and verifier as real (random, few-kB) transformers folders with a pvg
    tokenizer, as a resume checks them and an export loads them: a Llama of one tiny layer."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from pvg.data.tokenizer import save_tokenizer, train_tokenizer

    tok = train_tokenizer([f"q{i}\nstep\n#### {i}" for i in range(6)])
    shape = dict(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                 num_attention_heads=1, num_key_value_heads=1, pad_token_id=tok.pad_token_id)
    for k in rounds:
        for which, model in (("prover", LlamaForCausalLM(LlamaConfig(**shape))),
                             ("verifier", LlamaForSequenceClassification(LlamaConfig(**shape, num_labels=1)))):
            model.save_pretrained(rf.ckpt(k, which))
            save_tokenizer(tok, rf.ckpt(k, which))


def make_run(root: Path, name: str = "run") -> Path:
    """A stopped-after-two-rounds run folder: config.yaml, state.json, 10 metrics rows, three pool
    files, each round's checkpoints."""
    run = root / name
    run.mkdir(parents=True)
    rf = RunFolder(run)
    cfg = load_config(CONFIG, [f"run.out_dir={root}", f"run.cache_dir={root / 'cache'}", "data.num_problems=200",
                               "logging.progress=false"])
    rf.write_text("config.yaml", cfg.to_yaml())
    rows = []
    for k in (0, 1):
        rows += [{"kind": "ppo", "round": k, "step": s, "updates": s, "reward_helpful": 0.1 * s} for s in (1, 2, 3, 4)]
        rows.append(_round_row(k))
    rf.append_metrics(rows)
    for k in (INITIAL, 0, 1):
        write_round(rf.pool, k, _pool_rows(k))
    write_checkpoints(rf)
    for phase in PHASES:
        rf.mark(phase)
    return run


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def mute_server():
    """A port that accepts connections and never answers: another server, or a wedged head node."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for c in conns + [srv]:
            c.close()
