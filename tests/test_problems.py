import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from pvg.errors import PvgError
from pvg.data.problems import Problem, load_hub, load_jsonl, save_jsonl, split_of, split_problems, stable_id
from pvg.data.synth import generate

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared/data/gsm8k"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- split ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pid, side",
    [("p-1", "prover"), ("p-2", "verifier"), ("p-11", "test"), ("gsm8k-abc", "verifier"), ("synth-000000000000", "prover")],
)
def test_split_of_pinned(pid, side):
    # computed once and pinned: a change here would move problems across sides between versions
    assert split_of(pid) == side
    assert split_of(pid) == split_of(pid)


def test_split_of_other_fractions_pinned():
    assert split_of("gsm8k-abc", 0.8, 0.1) == "prover"
    assert split_of("p-11", 0.8, 0.1) == "test"


def test_split_fractions():
    ids = [f"id-{i}" for i in range(5000)]
    for prover, verifier in [(0.45, 0.45), (0.6, 0.2)]:
        c = Counter(split_of(i, prover, verifier) for i in ids)
        assert abs(c["prover"] / 5000 - prover) < 0.03
        assert abs(c["verifier"] / 5000 - verifier) < 0.03
        assert abs(c["test"] / 5000 - (1 - prover - verifier)) < 0.03


def test_split_independent_of_order_and_neighbours():
    ps = generate(60, seed=4)
    sides = {p.id: side for side, group in split_problems(ps).items() for p in group}
    shuffled = ps[:]
    random.Random(0).shuffle(shuffled)
    sides2 = {p.id: side for side, group in split_problems(shuffled).items() for p in group}
    alone = {p.id: next(s for s, g in split_problems([p]).items() if g) for p in ps[:20]}
    assert sides == sides2
    assert all(sides[i] == s for i, s in alone.items())
    assert all(sides[p.id] == split_of(p.id) for p in ps)
    split = split_problems(ps)
    assert sum(len(g) for g in split.values()) == len(ps)
    assert set(split) == {"prover", "verifier", "test"}


# --- GSM8K JSONL --------------------------------------------------------------------------------


def test_load_gsm8k_jsonl(tmp_path):
    rows = [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
        {"question": "A big number?", "answer": "It is a lot.\n#### 1,234"},
        {"question": "Negative?", "answer": "#### -5"},
    ]
    p = write_jsonl(tmp_path / "gsm.jsonl", [rows[0], "", rows[1], "   ", rows[2]])
    ps = load_jsonl(p)
    assert [x.answer for x in ps] == ["7", "1234", "-5"]
    assert ps[0].reference == rows[0]["answer"]
    assert ps[0].question == rows[0]["question"]
    assert ps[0].id == stable_id("gsm8k", rows[0]["question"])
    assert ps[0].id.startswith("gsm8k-")
    # ids depend on the question only: stable across files and orderings
    q = write_jsonl(tmp_path / "other.jsonl", [rows[2], rows[0]])
    assert {x.id for x in load_jsonl(q)} == {ps[0].id, ps[2].id}
    assert load_jsonl(str(p)) == ps


@pytest.mark.parametrize(
    "bad, lineno, words",
    [
        ("{not json", 2, "not valid JSON"),
        ({"question": "Q?"}, 2, "answer"),
        ({"answer": "#### 3"}, 2, "question"),
        ({"question": "Q?", "answer": "   "}, 2, "answer"),
        ({"question": "Q?", "answer": "it is 3"}, 2, "####"),
        ({"question": "Q?", "answer": 3}, 2, "answer"),
        ([1, 2], 2, "JSON object"),
        ('"just a string"', 2, "JSON object"),
    ],
)
def test_load_jsonl_malformed_line(tmp_path, bad, lineno, words):
    good = {"question": "Fine?", "answer": "#### 1"}
    p = write_jsonl(tmp_path / "data.jsonl", [good, bad, good])
    with pytest.raises(PvgError) as info:
        load_jsonl(p)
    msg = str(info.value)
    assert f"data.jsonl:{lineno}" in msg
    assert words in msg


def test_load_jsonl_line_number_counts_blank_lines(tmp_path):
    p = write_jsonl(tmp_path / "gaps.jsonl", [{"question": "A?", "answer": "#### 1"}, "", "", "{oops"])
    with pytest.raises(PvgError, match=r"gaps\.jsonl:4"):
        load_jsonl(p)


def test_load_jsonl_missing_and_empty(tmp_path):
    with pytest.raises(PvgError, match="not found"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(PvgError, match="no problems"):
        load_jsonl(write_jsonl(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(PvgError):
        load_jsonl(tmp_path)  # a directory


def test_load_jsonl_malformed_synth_record(tmp_path):
    rec = generate(1, seed=0)[0].to_json()
    del rec["question"]
    p = write_jsonl(tmp_path / "synth.jsonl", [rec])
    with pytest.raises(PvgError, match=r"synth\.jsonl:1"):
        load_jsonl(p)


def test_load_jsonl_bad_encoding(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b'{"question": "A?", "answer": "#### 1"}\n{"question": "caf\xe9?", "answer": "#### 2"}\n')
    with pytest.raises(PvgError, match=r"latin\.jsonl:2"):
        load_jsonl(p)


# --- synthetic round trip -------------------------------------------------------------------------


def test_synth_round_trip(tmp_path):
    ps = generate(25, seed=7, max_steps=6, flaws_per_problem=3)
    out = tmp_path / "sub" / "synth.jsonl"
    save_jsonl(ps, out)
    assert len(out.read_text().splitlines()) == 25
    assert not list(out.parent.glob("*.tmp"))
    back = load_jsonl(out)
    assert back == ps
    assert all(isinstance(p.flawed, tuple) for p in back)
    save_jsonl(back, out)  # overwrite in place
    assert load_jsonl(out) == ps


def test_plain_problem_round_trip(tmp_path):
    p = Problem(id="x-1", question="Q?", answer="3", reference="#### 3")
    assert Problem.from_json(p.to_json()) == p


# --- the real GSM8K test set, when present --------------------------------------------------------


@pytest.mark.skipif(not (GSM8K / "test.jsonl").is_file(), reason="no local GSM8K copy")
def test_real_gsm8k_test_set():
    ps = load_jsonl(GSM8K / "test.jsonl")
    assert len(ps) == 1319
    assert len({p.id for p in ps}) == 1319
    assert all(p.answer and p.reference and "####" in p.reference for p in ps)
    assert all("," not in p.answer for p in ps)
    sides = Counter(split_of(p.id) for p in ps)
    assert all(n > 0 for n in sides.values()) and set(sides) == {"prover", "verifier", "test"}


# --- hub ----------------------------------------------------------------------------------------------


def test_load_hub_unreachable(monkeypatch, tmp_path):
    # set before `datasets` / huggingface_hub are first imported: they read these at import time
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    # ...and if another test imported them already, flip their module-level switches too
    for module, names in [("huggingface_hub.constants", ["HF_HUB_OFFLINE"]),
                          ("datasets.config", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])]:
        mod = sys.modules.get(module)
        for name in names:
            if mod is not None and hasattr(mod, name):
                monkeypatch.setattr(mod, name, True)
    with pytest.raises(PvgError) as info:
        load_hub("definitely/not-a-dataset-xyz")
    assert "definitely/not-a-dataset-xyz" in str(info.value)


def test_load_hub_path_through_datasets_on_local_gsm8k():
    """The real `datasets.load_dataset` code path, fed the local GSM8K copy instead of the hub."""
    gsm = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
    if not gsm.is_file():
        pytest.skip("GSM8K copy not present at ../shared/data/gsm8k")
    from pvg.data.problems import load_hub, load_jsonl

    via_datasets = load_hub("json", None, "train", data_files=str(gsm))
    direct = load_jsonl(gsm)
    assert len(via_datasets) == 1319
    assert [p.id for p in via_datasets] == [p.id for p in direct]
    assert [p.answer for p in via_datasets] == [p.answer for p in direct]
