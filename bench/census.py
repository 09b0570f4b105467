"""A census of bad input and faults against the `pvg` CLI: each case is tried as a new user would, then
sorted into what happened.

    python bench/census.py            # every case; about four minutes on two cores
    python bench/census.py --list     # the cases, without running them
    python bench/census.py -k resume  # only the cases whose name contains "resume"
    python bench/census.py --json     # one JSON object: totals and every case's outcome

Outcomes:
- clear: exit 2 and one `error:` message on stderr, no traceback. For a command that only reads, a
  warning with exit 0 counts here when the case expects a warning.
- traceback: a Python traceback, or any exit other than 0 and 2.
- silent: exit 0 where an error (or a warning) was due.
- hang: still running after the case's time limit.
- data lost: a file that existed before the command was changed or removed by it.

Most cases run in this process through typer's CliRunner (a time limit by SIGALRM). The cases that
reach the network run as subprocesses with a time limit. No case starts a warm start or a game: each
is refused before that. The full-disk and read-only cases need root to mount a small tmpfs, and are
skipped otherwise. Exits 1 if any case ended other than clear.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fault tests' run-folder builder (tests/runkit.py)
CONFIG = REPO / "configs" / "tiny-ci.yaml"
OUTCOMES = ["clear", "traceback", "silent", "hang", "data lost"]


@dataclass
class Case:
    name: str
    args: Callable[[Path], list]  # the command line, given the case's own scratch folder
    setup: Callable[[Path], None] = lambda d: None
    expect: str = "error"  # "error", or "warn": exit 0 with a `warning:` line (a command that only reads)
    protect: str | None = None  # a folder (under the scratch folder) no file of which may change
    subprocess: bool = False
    timeout: float = 60.0
    needs_root: bool = False
    check: Callable[[Path], str | None] | None = None  # extra: a reason the outcome is "silent", or None


@dataclass
class Outcome:
    case: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ fixtures
from runkit import make_run, mute_server, snapshot  # noqa: E402  (after the path above)


def write(d: Path, name: str, data: str | bytes) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


@contextlib.contextmanager
def tmpfs(path: Path, ro: bool = False, size: str = "64k"):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                              capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(path)], check=False)


# ------------------------------------------------------------------------------------------ the cases
BAD_CONFIGS = {
    "empty file": "",
    "only a comment": "# nothing here\n",
    "a section given twice": "ppo:\n  lr: 1.0e-4\ngame:\n  max_rounds: 2\nppo:\n  epochs: 2\n",
    "a key given twice": "ppo:\n  lr: 1.0e-4\n  lr: 2.0e-4\n",
    "lr .inf": "ppo:\n  lr: .inf\n",
    "lr .nan": "ppo:\n  lr: .nan\n",
    "fool_rate_bar -.inf": "game:\n  fool_rate_bar: -.inf\n",
    "not UTF-8": b"run:\n  name: caf\xe9\n",
    "binary garbage": bytes(range(256)),
    "a list at the top": "- run\n- ppo\n",
    "a scalar at the top": "42\n",
    "invalid YAML (tab indent)": "ppo:\n\tlr: 1\n",
    "unknown section": "ppoo:\n  lr: 1.0e-4\n",
    "unknown key": "ppo:\n  lrr: 1.0e-4\n",
    "wrong type": "ppo:\n  epochs: many\n",
    "below its minimum": "ppo:\n  epochs: -1\n",
    "split leaves no test set": "data:\n  split: {prover: 0.6, verifier: 0.6}\n",
    "run.name with a slash": "run:\n  name: a/b\n",
}


def config_cases() -> list[Case]:
    cases = []
    for what, text in BAD_CONFIGS.items():
        for cmd in (["config", "show"], ["data", "preview"], ["train"]):
            cases.append(Case(f"config: {what} -> pvg {' '.join(cmd)}",
                              lambda d, cmd=cmd: [*cmd, d / "c.yaml"],
                              lambda d, text=text: write(d, "c.yaml", text) and None))
    for cmd in (["config", "show"], ["train"]):
        cases.append(Case(f"config: a directory -> pvg {' '.join(cmd)}", lambda d, cmd=cmd: [*cmd, d]))
        cases.append(Case(f"config: a missing file -> pvg {' '.join(cmd)}", lambda d, cmd=cmd: [*cmd, d / "nope.yaml"]))
    for bad in ("ppo.lr", "=3", "ppo.nope=1", "ppo.epochs=many", "ppo.lr=.inf", "nosuch.key=1"):
        cases.append(Case(f"--set {bad!r} -> pvg config show", lambda d, bad=bad: ["config", "show", CONFIG, "--set", bad]))
    cases.append(Case("train --resume with CONFIG as well", lambda d: ["train", CONFIG, "--resume", d / "run"],
                      lambda d: make_run(d) and None, protect="run"))
    cases.append(Case("train --resume with a --set it cannot change",
                      lambda d: ["train", "--resume", d / "run", "--set", "ppo.lr=1"], lambda d: make_run(d) and None,
                      protect="run"))
    cases.append(Case("train with neither CONFIG nor --resume", lambda d: ["train"]))
    cases.append(Case("train on a config refused only by its problem split (no folder may be left)",
                      lambda d: ["train", d / "c.yaml"],
                      lambda d: write(d, "c.yaml", f"run: {{out_dir: {d / 'runs'}, cache_dir: {d / 'cache'}}}\n"
                                                   "data: {num_problems: 10}\n") and None,
                      check=lambda d: "left a run folder" if (d / "runs").exists() else None))
    return cases


def _damage_metrics(line: str | bytes, at: int = 3):
    def damage(run: Path) -> None:
        lines = (run / "metrics.jsonl").read_bytes().split(b"\n")
        lines[at] = line.encode() if isinstance(line, str) else line
        (run / "metrics.jsonl").write_bytes(b"\n".join(lines))
    return damage


def _truncate(name: str):
    def damage(run: Path) -> None:
        p = run / name
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return damage


def _replace(name: str, text: str):
    return lambda run: (run / name).write_text(text) and None


RUN_DAMAGE = {
    # name: (damage, which commands read the damaged file and how each must answer)
    "metrics.jsonl: a corrupt middle line": (_damage_metrics("{not json"), {"resume": "error", "metrics": "warn",
                                                                          "report": "warn", "plot": "warn",
                                                                          "separability": "warn"}),
    "metrics.jsonl: a NUL-garbled line": (_damage_metrics(b'{"kind": "ppo"\x00\x00'), {"resume": "error", "metrics": "warn"}),
    "metrics.jsonl: a non-UTF-8 line": (_damage_metrics(b"\xff\xfe"), {"resume": "error", "metrics": "warn"}),
    "metrics.jsonl: a JSON list line": (_damage_metrics("[1, 2]"), {"resume": "error", "metrics": "warn"}),
    "metrics.jsonl: a row without a kind": (_damage_metrics('{"step": 2}'), {"resume": "error", "metrics": "warn"}),
    "metrics.jsonl: a round row deleted": (lambda run: (run / "metrics.jsonl").write_text(
        "".join(l + "\n" for l in (run / "metrics.jsonl").read_text().splitlines() if '"kind": "round", "round": 0' not in l)),
        {"metrics": "warn"}),
    "state.json: truncated": (_truncate("state.json"), {"resume": "error", "metrics": "error", "report": "error",
                                                        "plot": "error", "export": "error", "separability": "error"}),
    "state.json: empty": (_replace("state.json", ""), {"resume": "error", "metrics": "error", "export": "error"}),
    "state.json: wrong shape": (_replace("state.json", '{"finished": "initial"}'), {"resume": "error", "metrics": "error",
                                                                                    "export": "error"}),
    "state.json: a list": (_replace("state.json", "[]"), {"resume": "error", "metrics": "error"}),
    "pool/round-0.parquet: truncated": (_truncate("pool/round-0.parquet"), {"resume": "error", "separability": "error"}),
    "pool/initial.parquet: truncated": (_truncate("pool/initial.parquet"), {"resume": "error", "separability": "error"}),
    "pool/round-1.parquet: missing": (lambda run: (run / "pool/round-1.parquet").unlink(), {"resume": "error",
                                                                                            "separability": "error"}),
    "pool/round-0.parquet: not Parquet": (_replace("pool/round-0.parquet", "hello"), {"resume": "error",
                                                                                      "separability": "error"}),
    "summary.json: truncated": (_replace("summary.json", '{"stop_reason": '), {"resume": "error", "metrics": "error"}),
    "config.yaml: invalid YAML": (_replace("config.yaml", "ppo: [\n"), {"resume": "error", "metrics": "error",
                                                                        "export": "error"}),
    "config.yaml: missing": (lambda run: (run / "config.yaml").unlink(), {"resume": "error", "metrics": "error",
                                                                          "export": "error"}),
    "state.json: missing": (lambda run: (run / "state.json").unlink(), {"metrics": "error", "export": "error"}),
    "checkpoints/round-1/prover: weights truncated": (_truncate("checkpoints/round-1/prover/model.safetensors"),
                                                      {"resume": "error"}),
    "checkpoints/round-1/verifier: weights truncated": (_truncate("checkpoints/round-1/verifier/model.safetensors"),
                                                        {"resume": "error", "export": "error"}),
    "checkpoints/round-1/verifier: config.json broken": (_replace("checkpoints/round-1/verifier/config.json", "{"),
                                                         {"resume": "error", "export": "error"}),
    "the run folder is a file": (lambda run: shutil.rmtree(run) or run.write_text("x"), {"resume": "error",
                                                                                         "metrics": "error"}),
}
COMMANDS = {
    "resume": lambda d: ["train", "--resume", d / "run"],
    "metrics": lambda d: ["metrics", d / "run"],
    "report": lambda d: ["report", d / "run", "-o", d / "r.html", "--examples", "1"],
    "plot": lambda d: ["plot", d / "run", "-o", d / "p.png"],
    "export": lambda d: ["export-verifier", d / "run", "-o", d / "v"],
    "separability": lambda d: ["eval", "separability", d / "run"],
}


def run_folder_cases() -> list[Case]:
    cases = []
    for what, (damage, readers) in RUN_DAMAGE.items():
        for cmd, expect in readers.items():
            cases.append(Case(f"run folder: {what} -> pvg {COMMANDS[cmd](Path('RUN'))[0]} ({cmd})", COMMANDS[cmd],
                              lambda d, damage=damage: damage(make_run(d)), expect=expect, protect="run"))
    cases.append(Case("run folder: a path that does not exist -> resume", lambda d: ["train", "--resume", d / "nope"]))
    cases.append(Case("run folder: a path that does not exist -> metrics", lambda d: ["metrics", d / "nope"]))
    cases.append(Case("run folder: a new run into an existing run", lambda d: ["train", d / "c.yaml"],
                      lambda d: (make_run(d, "tiny-ci"), write(d, "c.yaml", f"run: {{name: tiny-ci, out_dir: {d}, "
                                                                             f"cache_dir: {d / 'cache'}}}\n")) and None,
                      protect="tiny-ci"))
    return cases


def output_cases() -> list[Case]:
    def existing(d: Path) -> None:
        make_run(d)
        write(d, "in.jsonl", json.dumps({"question": "q", "solution": "s"}) + "\n")
        for name in ("o.jsonl", "o.html", "o.png"):
            write(d, f"out/{name}", "keep me")

    writers = {
        "data synth": lambda d, o: ["data", "synth", "-n", "3", "-o", o],
        "score": lambda d, o: ["score", "--verifier", d / "nope", "-i", d / "in.jsonl", "-o", o],
        "plot": lambda d, o: ["plot", d / "run", "-o", o],
        "report": lambda d, o: ["report", d / "run", "-o", o],
        "eval human-export": lambda d, o: ["eval", "human-export", d / "run", "-o", o],
    }
    suffix = {"data synth": "o.jsonl", "score": "o.jsonl", "plot": "o.png", "report": "o.html",
              "eval human-export": "o.html"}
    cases = []
    for cmd, args in writers.items():
        cases.append(Case(f"output: -o an existing file, no --force -> pvg {cmd}",
                          lambda d, args=args, cmd=cmd: args(d, d / "out" / suffix[cmd]), existing, protect="out"))
        cases.append(Case(f"output: -o a directory -> pvg {cmd}", lambda d, args=args: args(d, d / "out"), existing,
                          protect="out"))
    writers["export-verifier"] = lambda d, o: ["export-verifier", d / "run", "-o", o]
    writers["export-prover"] = lambda d, o: ["export-prover", d / "run", "-o", o]
    suffix |= {"export-verifier": "v", "export-prover": "p"}
    for cmd in ("data synth", "plot", "report", "export-verifier", "export-prover"):
        for ro in (False, True):
            def setup(d: Path, ro=ro) -> None:
                make_run(d)
                write(d, "in.jsonl", "{}\n")
            cases.append(Case(f"output: a {'read-only' if ro else 'full'} file system -> pvg {cmd}",
                              lambda d, args=writers[cmd], cmd=cmd, ro=ro: args(d, d / ("ro" if ro else "full")
                                                                                 / suffix[cmd]),
                              setup, needs_root=True))
    return cases


def _mute_port(d: Path) -> None:
    """tests/runkit's mute server for the case's command to be pointed at, its port in d/port; held
    open until the census ends."""
    write(d, "port", str(_MUTE.enter_context(mute_server())))
    write(d, "c.yaml", f"run: {{out_dir: {d / 'runs'}, cache_dir: {d / 'cache'}}}\n")


_MUTE = contextlib.ExitStack()


def _port(d: Path) -> str:
    return (d / "port").read_text()


def network_cases() -> list[Case]:
    return [
        Case("network: train --address at a port that accepts and never answers",
             lambda d: ["train", d / "c.yaml", "--address", f"127.0.0.1:{_port(d)}"], _mute_port,
             subprocess=True, timeout=90),
        Case("network: jobs list at a port that accepts and never answers",
             lambda d: ["jobs", "list", "--address", f"http://127.0.0.1:{_port(d)}"], _mute_port,
             subprocess=True, timeout=120),
        Case("network: train --address with nothing listening (127.0.0.1:1)",
             lambda d: ["train", d / "c.yaml", "--address", "127.0.0.1:1"],
             lambda d: write(d, "c.yaml", f"run: {{out_dir: {d / 'runs'}, cache_dir: {d / 'cache'}}}\n") and None,
             subprocess=True, timeout=90),
        Case("network: train --address ray:// with nothing listening",
             lambda d: ["train", d / "c.yaml", "--address", "ray://127.0.0.1:1"],
             lambda d: write(d, "c.yaml", f"run: {{out_dir: {d / 'runs'}, cache_dir: {d / 'cache'}}}\n") and None,
             subprocess=True, timeout=90),
        Case("network: train --address without a port",
             lambda d: ["train", d / "c.yaml", "--address", "somehost"],
             lambda d: write(d, "c.yaml", f"run: {{out_dir: {d / 'runs'}, cache_dir: {d / 'cache'}}}\n") and None,
             subprocess=True, timeout=90),
        Case("network: jobs list at a dashboard with nothing listening",
             lambda d: ["jobs", "list", "--address", "http://127.0.0.1:1"], subprocess=True, timeout=90),
        Case("network: submit to a GCS address (ray://)",
             lambda d: ["submit", CONFIG, "--address", "ray://127.0.0.1:1"], subprocess=True, timeout=90),
    ]


def all_cases() -> list[Case]:
    return config_cases() + run_folder_cases() + output_cases() + network_cases()


# ------------------------------------------------------------------------------------------ running one
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_case(case: Case) -> Outcome:
    from typer.testing import CliRunner

    from pvg.cli import app

    d = Path(tempfile.mkdtemp(prefix="pvg-census-"))
    t0 = time.time()
    try:
        with contextlib.ExitStack() as stack:
            if case.needs_root:
                mounted = stack.enter_context(tmpfs(d / "full")) and stack.enter_context(tmpfs(d / "ro", ro=True))
                if not mounted:
                    return Outcome(case.name, "skipped", "needs root to mount a tmpfs")
            case.setup(d)
            if case.needs_root and (d / "full").is_dir():
                with contextlib.suppress(OSError):
                    (d / "full" / "filler").write_bytes(b"x" * (62 * 1024))
            protected = snapshot(d / case.protect) if case.protect and (d / case.protect).is_dir() else None
            args = [str(a) for a in case.args(d)]
            if case.subprocess:
                proc = subprocess.Popen([sys.executable, "-m", "pvg.cli", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True,
                                        env={**os.environ, "RAY_ADDRESS": ""})
                try:
                    stdout, stderr = proc.communicate(timeout=case.timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)  # the command and anything it started
                    proc.communicate()
                    return Outcome(case.name, "hang", f"still running after {case.timeout:g}s", time.time() - t0)
                code, text, crashed = proc.returncode, stdout + stderr, None
            else:
                old = signal.signal(signal.SIGALRM, _alarm)
                signal.alarm(int(case.timeout))
                try:
                    result = CliRunner().invoke(app, args)
                except _Hang:
                    return Outcome(case.name, "hang", f"still running after {case.timeout:g}s", time.time() - t0)
                finally:
                    signal.alarm(0)
                    signal.signal(signal.SIGALRM, old)
                if isinstance(result.exception, _Hang):
                    return Outcome(case.name, "hang", f"still running after {case.timeout:g}s", time.time() - t0)
                code, stderr = result.exit_code, result.stderr
                crashed = result.exception if not isinstance(result.exception, SystemExit) else None
                text = result.output
            return _judge(case, d, code, stderr, text, crashed, protected, time.time() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _judge(case, d, code, stderr, text, crashed, protected, seconds) -> Outcome:
    first = " ".join(stderr.split())[:300]
    if protected is not None:
        now = snapshot(d / case.protect) if (d / case.protect).is_dir() else {}
        changed = [k for k, v in protected.items() if now.get(k) != v]
        if changed:
            return Outcome(case.name, "data lost", f"changed or removed: {', '.join(changed[:4])}", seconds)
    if crashed is not None or "Traceback" in text or code not in (0, 2):
        what = f"{type(crashed).__name__}: {crashed}" if crashed is not None else f"exit {code}"
        return Outcome(case.name, "traceback", what[:300], seconds)
    if case.check is not None and (why := case.check(d)):
        return Outcome(case.name, "silent", why, seconds)
    if code == 2:  # one error (after pvg's own lines, such as `run folder: ...`): its line, then only the
        # indented lines of its list (`invalid config X:` and a line per key), nothing after it
        lines = [line for line in stderr.splitlines() if line.strip()]
        errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
        ok = len(errors) == 1 and all(line.startswith(" ") for line in lines[errors[0] + 1:])
        errors = [lines[i] for i in errors]
        return Outcome(case.name, "clear" if ok else "traceback", " ".join(errors[0].split())[:300] if ok else first,
                       seconds)
    if case.expect == "warn" and "warning:" in stderr:
        return Outcome(case.name, "clear", first, seconds)
    return Outcome(case.name, "silent", f"exit 0: {first}" if first else "exit 0, nothing said", seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only the cases whose name contains this")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = ap.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONUNBUFFERED"] = "1"
    cases = [c for c in all_cases() if args.k in c.name]
    if args.list:
        for c in cases:
            print(c.name)
        print(f"{len(cases)} cases")
        return
    outcomes = []
    out = sys.stdout
    if args.json:  # libraries print to stdout on import (DeepSpeed's accelerator line): keep the JSON clean
        sys.stdout = sys.stderr
    for c in cases:
        o = run_case(c)
        outcomes.append(o)
        if not args.json:
            mark = "ok " if o.outcome == "clear" else o.outcome.upper()
            print(f"{mark:10} {o.seconds:5.1f}s  {o.case}" + ("" if o.outcome == "clear" else f"\n           {o.detail}"),
                  flush=True)
    _MUTE.close()
    tried = [o for o in outcomes if o.outcome != "skipped"]
    totals = {"tried": len(tried), **{k: sum(o.outcome == k for o in tried) for k in OUTCOMES},
              "skipped": len(outcomes) - len(tried)}
    if args.json:
        print(json.dumps({"totals": totals, "cases": [o.__dict__ for o in outcomes]}, indent=2), file=out)
    else:
        print(" · ".join(f"{k}: {v}" for k, v in totals.items()))
    sys.exit(0 if totals["tried"] == totals["clear"] else 1)


if __name__ == "__main__":
    main()
