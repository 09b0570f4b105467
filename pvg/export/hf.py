"""Export a finished round's verifier or prover as a self-describing Hugging Face folder.

A checkpoint under `checkpoints/round-K/` is the game's internal state: what it means (which input
format, which threshold, how good it was) lives in other files of the run. An export carries all of
that with it: the weights (safetensors), a tokenizer set up the way the game used it, a model card
with the round's metrics and training config, and a small JSON file with the exact input format, so
that it loads and scores correctly with nothing but `transformers`.

Every export is built in a hidden temporary sibling of the target and renamed into place: a failed
or interrupted export leaves nothing behind, and an existing export is only replaced with `--force`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from pvg import __version__
from pvg.errors import PvgError
from pvg.data.roles import ROLE_TOKENS, SYSTEM_PROMPTS, VERIFIER_FORMAT, tiny_prompt
from pvg.data.tokenizer import save_tokenizer
from pvg.game.generation import stop_token_ids

VERIFIER_META = "pvg_verifier.json"
PROVER_META = "pvg_prover.json"
FORMAT_VERSION = 1

BEST_RULE = (
    "the round whose verifier has the highest AUROC (correct vs incorrect) on that round's fresh "
    "held-out eval solutions (verifier_auroc in metrics.jsonl); ties go to the later round, whose "
    "verifier was trained on more of the pool"
)
DEFAULT_RULE = "the last round whose {which} phase and held-out eval both finished"
CALCULATOR_NOTE = """
The game sampled with a calculator: the result of every `a op b =` was written by
`pvg.game.calculator.Calculator` (a `LogitsProcessor`), not by the model. Pass
`logits_processor=LogitsProcessorList([Calculator(tok, prompt_width)])` to `generate` to sample
as the game did; without it the model writes its own results, with more arithmetic slips."""
# The transformers versions an export's folder was loaded with (model, tokenizer, scoring): 5.24.0 by the
# test suite (tests/test_export.py); 4.57.6 by hand in a throwaway venv, for the tokenizer and config
# (docs/export.md#transformers-versions). pyproject.toml accepts transformers>=4.56.
TESTED_TRANSFORMERS = ("4.57.6", "5.24.0")
SCORE_READOUT = "logits[:, 0] of the one-logit sequence classifier; higher = more convincing"

# What a reader of a verifier card wants first; every other key of the round row follows in the JSON.
VERIFIER_KEYS = ["verifier_auroc", "verifier_completeness", "verifier_soundness", "verifier_threshold",
                 "sneaky_fool_rate", "helpful_pass_rate", "sneaky_incorrect_rate", "eval_solutions",
                 "verifier_pairs", "verifier_pair_acc", "verifier_loss"]
PROVER_KEYS = ["helpful_pass_rate", "sneaky_incorrect_rate", "sneaky_fool_rate", "steps_to_exploit", "exploited",
               "ppo_steps", "kl_to_init", "helpful_mean_tokens", "sneaky_mean_tokens", "verifier_auroc",
               "eval_solutions"]


# ------------------------------------------------------------------------------------------ the run
@dataclass
class RunInfo:
    path: Path
    cfg: object  # PvgConfig, the run's own resolved config.yaml
    finished: set[str]
    rows: dict[int, dict]  # kind="round" metrics rows by round
    summary: dict | None
    folder: object = None  # the RunFolder read (for a URI run folder: its local mirror, checkpoints on demand)

    @property
    def location(self) -> str:
        """The run folder as the user named it: a path, or a URI."""
        return self.folder.location if self.folder is not None else str(self.path)

    def checkpoint(self, k: int, which: str) -> Path:
        """Round k's `which` checkpoint folder, downloaded first when the run folder is a URI."""
        if self.folder is not None:
            return self.folder.fetch_ckpt(k, which)
        return self.path / "checkpoints" / f"round-{k}" / which


def open_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder (a path, or a URI through a local mirror), saying exactly what is missing
    when it is not one."""
    from pvg.config import load_config
    from pvg.run.folder import open_folder

    rf = open_folder(run_dir)
    path = rf.path
    missing = [p.name for p in (rf.config_path, rf.state_path) if not p.is_file()]
    if missing:
        raise PvgError(f"{rf.location} is not a pvg run folder: missing {', '.join(missing)} "
                       "(give the folder `pvg train` wrote, e.g. runs/tiny)")
    try:
        finished = set(rf.finished())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PvgError(f"{rf.state_path} is unreadable ({e}); the run folder is damaged") from e
    cfg = load_config(rf.config_path)
    rows = {r["round"]: r for r in rf.read_metrics(on_damage="warn") if r.get("kind") == "round"}
    summary = None
    if rf.summary_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(rf.summary_path.read_text())
    return RunInfo(path, cfg, finished, rows, summary, rf)


def rounds_with(run: RunInfo, which: str) -> list[int]:
    """Rounds whose `which` phase finished: state.json, written last, is the run's own record of that."""
    out = []
    for phase in run.finished:
        k, _, name = phase.partition("/")
        if name == which and k.isdigit():
            out.append(int(k))
    return sorted(out)


def choose_round(run: RunInfo, which: str, round_: int | None, best: bool) -> tuple[int, dict]:
    """The round to export, and how it was chosen: {"mode", "rule"}, for the card and the JSON."""
    have = rounds_with(run, which)
    listed = ", ".join(map(str, have)) or "none yet"
    if round_ is not None and best:
        raise PvgError("give either --round K or --best, not both")
    if round_ is not None:
        if round_ not in have:
            raise PvgError(f"round {round_} of {run.location} has no {which} checkpoint; rounds with one: {listed}")
        return round_, {"mode": "round", "rule": f"round {round_}, given with --round"}
    measured = [k for k in have if f"{k}/eval" in run.finished and k in run.rows]
    if best:
        scored = [(k, run.rows[k].get("verifier_auroc")) for k in measured]
        scored = [(k, a) for k, a in scored if isinstance(a, (int, float)) and not math.isnan(a)]
        if not scored:
            raise PvgError(f"no round of {run.location} has a measured verifier_auroc yet, so --best has nothing "
                           f"to compare; rounds with a {which} checkpoint: {listed} (use --round K)")
        k = max(scored, key=lambda ka: (ka[1], ka[0]))[0]
        return k, {"mode": "best", "rule": BEST_RULE}
    if not measured:
        hint = " (use --round K to export an unmeasured one)" if have else ""
        raise PvgError(f"no round of {run.location} has a finished {which} and eval yet; rounds with a {which} "
                       f"checkpoint: {listed}{hint}")
    return measured[-1], {"mode": "default", "rule": DEFAULT_RULE.format(which=which)}


# ------------------------------------------------------------------------------------ checkpoints
def load_checkpoint(folder: Path, which: str):
    """Model and tokenizer of one checkpoint, refusing anything partial.

    A missing score head or layer would not fail `from_pretrained`: transformers re-initializes it at
    random with a warning, and the export would score noise. So the loading report must be clean.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from pvg.game.models import quiet_libraries
    from pvg.data.tokenizer import load_tokenizer

    quiet_libraries()
    if not folder.is_dir():
        raise PvgError(f"{which} checkpoint {folder} is missing although state.json lists the phase as finished; "
                       "the run folder is damaged")
    problems = []
    if not (folder / "config.json").is_file():
        problems.append("no config.json")
    if not any((folder / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")):
        problems.append("no model.safetensors")
    if problems:
        raise PvgError(f"{which} checkpoint {folder} is partial: {', '.join(problems)}")
    cls = AutoModelForSequenceClassification if which == "verifier" else AutoModelForCausalLM
    try:
        model, info = cls.from_pretrained(str(folder), dtype="auto", output_loading_info=True)
    except Exception as e:  # noqa: BLE001 -- any load failure is a damaged checkpoint to the user
        raise PvgError(f"{which} checkpoint {folder} is corrupt or partial: {_first_line(e)}") from e
    bad = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        detail = "; ".join(f"{k}: {', '.join(map(str, v[:3]))}{' ...' if len(v) > 3 else ''}" for k, v in bad.items())
        raise PvgError(f"{which} checkpoint {folder} does not match its config ({detail or info['error_msgs'][0]})")
    if which == "verifier" and model.config.num_labels != 1:
        raise PvgError(f"{folder} has {model.config.num_labels} output labels; a pvg verifier has exactly one score")
    try:
        tok = load_tokenizer(folder)
    except Exception as e:  # noqa: BLE001
        raise PvgError(f"the tokenizer in {folder} does not load: {_first_line(e)}") from e
    return model.eval(), tok


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def check_dest(dest: Path, force: bool, protect: Path | None = None) -> None:
    """Refuse a destination before any work is done (loading a 7B prover only to refuse is rude)."""
    if dest.exists() and not dest.is_dir():
        raise PvgError(f"{dest} exists and is a file; give a folder to export into")
    if protect is not None:
        d, p = dest.resolve(), Path(protect).resolve()
        if d == p or d in p.parents:
            raise PvgError(f"-o {dest} would replace the run folder {protect}; export next to it or into "
                           f"{Path(protect) / 'exports'}")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise PvgError(f"{dest} already exists and is not empty; pass --force to replace it")


@contextlib.contextmanager
def atomic_dir(dest: Path, force: bool, protect: Path | None = None) -> Iterator[Path]:
    """Yield an empty temporary sibling of `dest`; on success it becomes `dest`, on any error it is removed.

    A sibling (same filesystem) makes the final step a rename, so `dest` is never seen half-written.
    `protect` is a folder that must not be replaced (the run itself: `--force -o RUN_DIR` would delete it).
    """
    dest = Path(dest)
    check_dest(dest, force, protect)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield tmp
        _share(tmp)
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        if dest.exists():  # --force: move the old one aside, so a failed swap can put it back
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.rmdir(old)
            dest.rename(old)
            try:
                tmp.rename(dest)
            except BaseException:
                old.rename(dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _share(folder: Path) -> None:
    """mkdtemp (and safetensors) create owner-only files; an export is meant to be read by others."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.rglob("*"):
        f.chmod((0o777 if f.is_dir() else 0o666) & ~umask)


# ----------------------------------------------------------------------------------------- exports
def export_verifier(run_dir: str | Path, out: Path, round_: int | None = None, best: bool = False,
                    force: bool = False) -> dict:
    """Write the verifier of one round to `out`; returns the pvg_verifier.json contents."""
    run = open_run(run_dir)
    k, selection = choose_round(run, "verifier", round_, best)
    check_dest(out, force, protect=run.path)
    vcfg = run.cfg.verifier
    row = run.rows.get(k) if f"{k}/eval" in run.finished else None
    threshold = _finite(row.get("verifier_threshold")) if row else None
    meta = {
        "kind": "pvg-verifier",
        "format_version": FORMAT_VERSION,
        "template": VERIFIER_FORMAT["template"],
        "description": VERIFIER_FORMAT["description"] + "; the solution is stripped of surrounding whitespace",
        "tokenize": {"add_special_tokens": False, "padding_side": "right", "truncation": True,
                     "max_length": vcfg.max_length},
        "score": SCORE_READOUT,
        "threshold": threshold,
        "threshold_rule": vcfg.threshold if threshold is not None else None,
        "threshold_note": (f"verifier.threshold={vcfg.threshold} on round {k}'s held-out eval solutions; a solution "
                           "is accepted when score >= threshold" if threshold is not None else
                           f"round {k} has no finished eval, so no threshold was measured"),
        "round": k,
        "selection": selection,
        "run": _run_meta(run),
        "metrics": _clean(row) if row else None,
        "all_rounds": {str(r): _clean({m: run.rows[r].get(m) for m in VERIFIER_KEYS}) for r in sorted(run.rows)},
        "pvg_version": __version__,
        "loads_with": loads_with(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    model, tok = load_checkpoint(run.checkpoint(k, "verifier"), "verifier")
    if model.config.pad_token_id is None:  # batched scoring needs it to find each row's last token
        model.config.pad_token_id = tok.pad_token_id
    tok.padding_side = "right"  # what score_texts uses: left padding would shift the positions
    tok.model_max_length = vcfg.max_length  # so that plain truncation=True cuts where the game cut
    with atomic_dir(out, force, protect=run.path) as tmp:
        model.save_pretrained(tmp)
        save_tokenizer(tok, tmp)
        _write_json(tmp / VERIFIER_META, meta)
        (tmp / "README.md").write_text(verifier_card(meta, run))
    return meta


def export_prover(run_dir: str | Path, out: Path, round_: int | None = None, force: bool = False,
                  adapter_only: bool = False) -> dict:
    """Write the PPO-trained prover of one round to `out`; returns the pvg_prover.json contents.

    `adapter_only` (a LoRA prover): the adapter without the merged weights, megabytes instead of the
    model's gigabytes, for peft on top of its base (the model the adapter was trained on, named in
    `adapter_config.json`: the hub prover, or the warm-started one when the run warm-started it)."""
    run = open_run(run_dir)
    k, selection = choose_round(run, "prover", round_, False)
    check_dest(out, force, protect=run.path)
    adapter = run.checkpoint(k, "prover") / "adapter"
    if adapter_only and not (adapter / "adapter_config.json").is_file():
        raise PvgError(f"round {k}'s prover has no LoRA adapter (prover.lora was not set in {run.location}); "
                       "export the whole model: leave out --adapter-only")
    pcfg = run.cfg.prover
    tiny = pcfg.model is None
    row = run.rows.get(k) if f"{k}/eval" in run.finished else None
    if tiny:
        prompt = {"style": "role-token", "templates": {r: tiny_prompt("{question}", r) for r in ROLE_TOKENS}}
    else:
        prompt = {"style": "chat", "system_prompts": dict(SYSTEM_PROMPTS),
                  "fallback_template": "{system}\n\nQuestion: {question}\nSolution:\n",
                  "note": "system prompt of the role + the question as the user turn, through the tokenizer's "
                          "chat template with add_generation_prompt=True; the fallback when it has none"}
    meta = {
        "kind": "pvg-prover",
        "format_version": FORMAT_VERSION,
        "prompt": prompt,
        "tokenize": {"add_special_tokens": False, "padding_side": "left"},
        "generation": {"max_new_tokens": pcfg.max_new_tokens, "temperature": pcfg.temperature, "top_p": pcfg.top_p,
                       "top_k": 0, "calculator": pcfg.calculator},  # + the stop tokens, from the checkpoint
        "answer_format": "the solution ends with a line '#### N'",
        "round": k,
        "selection": selection,
        "run": _run_meta(run),
        "metrics": _clean(row) if row else None,
        "pvg_version": __version__,
        "loads_with": loads_with(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    model, tok = load_checkpoint(run.checkpoint(k, "prover"), "prover")
    stops = stop_token_ids(tok, model)
    meta["generation"] |= {"stop_token_ids": stops, "stop_tokens": tok.convert_ids_to_tokens(stops)}
    if adapter_only:
        base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
        meta["adapter"] = {"base": base, "base_is_local_path": bool(base) and Path(base).is_absolute()}
    tok.padding_side = "left"  # generation batches are left-padded
    with atomic_dir(out, force, protect=run.path) as tmp:
        if adapter_only:
            for f in adapter.iterdir():
                shutil.copy2(f, tmp / f.name)
        else:
            model.save_pretrained(tmp)
            if adapter.is_dir():  # a LoRA prover: the adapter alone too, for peft (its base: the warm-started prover)
                shutil.copytree(adapter, tmp / "adapter")
        save_tokenizer(tok, tmp)
        _write_json(tmp / PROVER_META, meta)
        (tmp / "README.md").write_text(prover_card(meta, run))
    return meta


def _run_meta(run: RunInfo) -> dict:
    where = run.location if "://" in run.location else str(run.path.resolve())
    return {"name": run.cfg.run.name, "path": where, "seed": run.cfg.run.seed,
            "rounds_measured": sorted(run.rows), "stop_reason": (run.summary or {}).get("stop_reason")}


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _clean(d: dict) -> dict:
    """Strict JSON: NaN (e.g. an AUROC with one class empty) becomes null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


# -------------------------------------------------------------------------------------- model cards
def _front_matter(tags: list[str], pipeline: str, base: str | None) -> str:
    fm = {"library_name": "transformers", "pipeline_tag": pipeline, "tags": tags}
    if base:
        fm["base_model"] = base
    return "---\n" + yaml.safe_dump(fm, sort_keys=False) + "---\n"


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _metrics_table(row: dict | None, keys: list[str]) -> str:
    if not row:
        return "_This round has no finished held-out eval, so nothing was measured._\n"
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| `{k}` | {_fmt(row.get(k))} |" for k in keys if k in row]
    return "\n".join(lines) + "\n"


def loads_with() -> dict:
    """For the card and the JSON: which transformers wrote the folder and which it was tested with."""
    import transformers

    return {"written_by_transformers": transformers.__version__, "tested_transformers": list(TESTED_TRANSFORMERS),
            "tokenizer_class": "PreTrainedTokenizerFast"}


def _versions_block(meta: dict) -> str:
    v = meta["loads_with"]
    return (f"## Versions\n\nWritten with transformers {v['written_by_transformers']}; loaded and tested with "
            f"transformers {' and '.join(v['tested_transformers'])}. The tokenizer is saved as "
            f"`{v['tokenizer_class']}`, a class every transformers from 4.56 on knows (5.x would write\n"
            "`TokenizersBackend`, which 4.x refuses).\n")


def _config_block(run: RunInfo, sections: list[str]) -> str:
    tree = {s: getattr(run.cfg, s).model_dump(mode="json") for s in sections}
    return "```yaml\n" + yaml.safe_dump(tree, sort_keys=False) + "```\n"


def verifier_card(meta: dict, run: RunInfo) -> str:
    k, t, n = meta["round"], meta["threshold"], meta["tokenize"]["max_length"]
    front = _front_matter(["reward-model", "verifier", "prover-verifier-game", "checkability-training", "pvg", "math"],
                          "text-classification", run.cfg.verifier.model)
    rounds = ["| round | AUROC | completeness | soundness | sneaky fool rate |", "|---|---|---|---|---|"]
    for r, m in meta["all_rounds"].items():
        mark = " (this one)" if int(r) == k else ""
        rounds.append(f"| {r}{mark} | {_fmt(m.get('verifier_auroc'))} | {_fmt(m.get('verifier_completeness'))} | "
                      f"{_fmt(m.get('verifier_soundness'))} | {_fmt(m.get('sneaky_fool_rate'))} |")
    rounds_table = "\n".join(rounds)
    threshold = f"`{t:.6g}`" if t is not None else "none"
    template = json.dumps(meta["template"])
    data = "tiny synthetic GSM-style problems" if run.cfg.data.source == "synthetic" else "the run's GSM-style data"
    return f"""{front}
# pvg verifier: run `{meta['run']['name']}`, round {k}

A one-logit sequence classifier trained in round {k} of a prover-verifier game (Kirchner et al. 2024,
*Prover-Verifier Games improve legibility of LLM outputs*) by `pvg` {meta['pvg_version']}. It scores
how **convincing** a grade-school-math solution is. It was trained with a pairwise Bradley-Terry loss
(plus a small score-centering term) on correct vs incorrect solutions from helpful and sneaky
provers, so a high score is meant to track correctness, within the distribution it was trained on.

Why this round ({meta['selection']['mode']}): {meta['selection']['rule']}.

## Input format

```
{{question}}
{{solution}}
```

The question, one newline, then the solution text stripped of surrounding whitespace (template
`{template}`). No role information, no special tokens added by hand: tokenize with
`add_special_tokens=False`, right padding, truncation at {n} tokens. The saved tokenizer already has
`padding_side="right"` and `model_max_length={n}`, as in the game, and `pad_token_id` is set in
`config.json`, so batches score correctly.

## Reading the score

`{meta['score']}`. Scores are unbounded and centred near 0; compare
them across solutions, not across exports.

Acceptance threshold of round {k}: {threshold} ({meta['threshold_note']}).

## Metrics of round {k} (fresh held-out solutions of that round's prover)

{_metrics_table(meta['metrics'], VERIFIER_KEYS)}
Completeness: share of correct solutions accepted (score >= threshold). Soundness: share of
incorrect ones rejected. Sneaky fool rate: share of sneaky, incorrect solutions accepted.

All rounds of the run. Each round is measured on its own prover's solutions, so these compare
verifiers against a moving target, not on one fixed test set:

{rounds_table}

## Usage

```python
import json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

path = "path/to/this/folder"
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path).eval()
meta = json.load(open(f"{{path}}/pvg_verifier.json"))

rows = [{{"question": "Eva has read 18 pages. Eva reads 2 more pages. How many pages has Eva read now?",
         "solution": "reads 2 more: 18 + 2 = 20\\n#### 20"}}]
texts = [meta["template"].format(question=r["question"], solution=r["solution"].strip()) for r in rows]
enc = tok(texts, return_tensors="pt", padding=True, truncation=True, add_special_tokens=False)
with torch.no_grad():
    scores = model(**enc).logits[:, 0]
accepted = scores >= (meta["threshold"] if meta["threshold"] is not None else 0.0)
```

With pvg: `pvg score --verifier path/to/this/folder --input rows.jsonl -o scored.jsonl`, and
`pvg eval-verifier --verifier path/to/this/folder --input labelled.jsonl`.

{_versions_block(meta)}
## Training config (from the run's config.yaml)

{_config_block(run, ["verifier", "ppo", "game"])}
## Limitations

Trained on {data}. A verifier from a prover-verifier game is only as robust
as the sneaky provers it has seen, and a high score is not a proof of correctness. `pvg_verifier.json` holds the same
format, threshold and metrics in machine-readable form.
"""


def prover_card(meta: dict, run: RunInfo) -> str:
    k, p, g = meta["round"], meta["prompt"], meta["generation"]
    front = _front_matter(["prover-verifier-game", "checkability-training", "ppo", "pvg", "math"],
                          "text-generation", run.cfg.prover.model)
    if p["style"] == "role-token":
        fmt = ("A tiny model: one role token, a space, the question and a newline; the model writes the\n"
               f"solution and stops at its EOS token.\n\n```\n{p['templates']['helpful']}```\n\n"
               f"(`{ROLE_TOKENS['sneaky']}` instead of `{ROLE_TOKENS['helpful']}` for the sneaky role.)\n")
        prompt_code = 'prompt = f"<helpful> {question}\\n"  # or f"<sneaky> {question}\\n"'
    else:
        fmt = ("The role's system prompt and the question as the user turn, through the tokenizer's chat\n"
               "template (`add_generation_prompt=True`); `pvg_prover.json` holds both system prompts verbatim,\n"
               "and the plain-text fallback used when a tokenizer has no chat template.\n")
        prompt_code = ('msgs = [{"role": "system", "content": meta["prompt"]["system_prompts"]["helpful"]},\n'
                       '        {"role": "user", "content": question}]\n'
                       'prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)')
    gen = (f"do_sample=True, temperature={g['temperature']}, top_p={g['top_p']}, top_k=0, "
           f"max_new_tokens={g['max_new_tokens']}")
    adapter = meta.get("adapter")
    if adapter:
        load_code = ('from peft import PeftModel\n\n'
                     'path = "path/to/this/folder"\n'
                     'meta = json.load(open(f"{path}/pvg_prover.json"))\n'
                     'tok = AutoTokenizer.from_pretrained(path)\n'
                     'base = AutoModelForCausalLM.from_pretrained(meta["adapter"]["base"])\n'
                     'model = PeftModel.from_pretrained(base, path).eval()')
        where = ("a folder on the machine that trained it (the warm-started prover in the run's cache): copy it "
                 "along" if adapter["base_is_local_path"] else "the model the run started from")
        fmt_adapter = (f"\nThis folder holds the LoRA adapter only (peft), not the weights: load it on its base, "
                       f"`{adapter['base']}`, {where}.\n")
    else:
        load_code = ('path = "path/to/this/folder"\n'
                     'tok = AutoTokenizer.from_pretrained(path)\n'
                     'model = AutoModelForCausalLM.from_pretrained(path).eval()\n'
                     'meta = json.load(open(f"{path}/pvg_prover.json"))')
        fmt_adapter = ""
    return f"""{front}
# pvg prover: run `{meta['run']['name']}`, round {k}

The prover of round {k} of a prover-verifier game, trained by PPO (`pvg` {meta['pvg_version']})
against that round's frozen verifier in two roles: **helpful** (correct and convincing) and
**sneaky** (wrong but convincing). The sneaky role is trained to write subtly incorrect solutions
that look right: use it to test verifiers and graders, never as a source of answers.
{fmt_adapter}
Why this round ({meta['selection']['mode']}): {meta['selection']['rule']}.

## Prompt format

{fmt}
Tokenize with `add_special_tokens=False` and left padding (the saved tokenizer pads left). The game
sampled with temperature {g['temperature']}, top_p {g['top_p']}, top_k 0 and at most
{g['max_new_tokens']} new tokens. Solutions end with a line `#### N`.{CALCULATOR_NOTE if g.get('calculator') else ''}

## Metrics of round {k} (held-out problems)

{_metrics_table(meta['metrics'], PROVER_KEYS)}
## Usage

```python
import json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer

{load_code}
question = "Eva has read 18 pages. Eva reads 2 more pages. How many pages has Eva read now?"
{prompt_code}
enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
out = model.generate(**enc, {gen}, pad_token_id=tok.pad_token_id,
                     eos_token_id=meta["generation"]["stop_token_ids"])
print(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
```

`stop_token_ids` ({g['stop_tokens']}): the tokenizer's EOS and, for a chat model, the token that ends
an assistant turn, where the game stopped sampling.

{_versions_block(meta)}
## Training config (from the run's config.yaml)

{_config_block(run, ["prover", "ppo", "game"])}"""
