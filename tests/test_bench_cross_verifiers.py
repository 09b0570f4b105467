"""bench/cross_verifiers.py: two games' verifiers graded on the same solutions (real checkpoints
written by hand, real sampling and scoring)."""

import shutil

import pytest

from benchkit import bench_script
from runkit import make_run
from pvg.config import load_config
from pvg.run.folder import RunFolder


def cv():
    return bench_script("cross_verifiers")


def test_one_game_against_its_copy_grades_both_verifiers_on_the_same_solutions(tmp_path):
    m = cv()
    a = make_run(tmp_path, "a")
    shutil.copytree(a, tmp_path / "b")
    runs = m.parse_runs([f"A={a}", f"B={tmp_path / 'b'}"])
    problems = m.shared_problems(runs, 4)
    result = m.cross(runs, problems, seed=0)
    assert result["provers"] == [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
    rows = {r["verifier"]: r for r in result["rows"]}
    assert set(rows) == set(result["provers"])
    # the same checkpoints on the same solutions: identical grades, cell for cell, pooled too
    for k in (0, 1):
        for key in result["provers"]:
            for what in ("auroc", "fool"):
                assert rows[("A", k)][what][key] == rows[("B", k)][what][key]
        assert rows[("A", k)]["pooled_auroc"] == rows[("B", k)]["pooled_auroc"]
    # the copy's provers wrote the same texts, so their rates agree too
    assert result["sneaky_incorrect"][("A", 1)] == result["sneaky_incorrect"][("B", 1)]
    text = m.report(result, "cmd", len(problems))
    assert "| A 0 |" in text and "| B 1 |" in text and "all pooled" in text


def test_games_on_different_problems_are_refused(tmp_path, capsys):
    m = cv()
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    rf = RunFolder(b)
    cfg = load_config(b / "config.yaml", ["run.seed=5"])
    rf.write_text("config.yaml", cfg.to_yaml())
    runs = m.parse_runs([f"A={a}", f"B={b}"])
    with pytest.raises(SystemExit) as e:
        m.shared_problems(runs, 50)
    assert e.value.code == 2
    assert "B's test problems differ" in capsys.readouterr().err


def test_bad_run_argument_exits_2_naming_it(tmp_path, capsys):
    m = cv()
    for arg, needle in (("nonsense", "is not NAME=RUN_DIR"), (f"X={tmp_path / 'none'}", "X:")):
        with pytest.raises(SystemExit) as e:
            m.parse_runs([arg])
        assert e.value.code == 2 and needle in capsys.readouterr().err


def test_tables_put_verifiers_in_rows_and_provers_in_columns():
    m = cv()
    cols = [("S", 0), ("C", 0)]
    result = {"provers": cols, "sneaky_incorrect": {c: 0.9 for c in cols}, "helpful_pass": {c: 1.0 for c in cols},
              "rows": [{"verifier": ("S", 0), "auroc": {("S", 0): 0.8, ("C", 0): 0.6}, "fool": {("S", 0): 0.1, ("C", 0): 0.25},
                        "pooled_auroc": 0.7},
                       {"verifier": ("C", 0), "auroc": {("S", 0): 0.5, ("C", 0): 0.9}, "fool": {("S", 0): 0.0, ("C", 0): 0.5},
                        "pooled_auroc": 0.65}]}
    auc = m.table(result, "auroc", ".3f", True)
    assert auc[0] == "| verifier \\ prover | S 0 | C 0 | all pooled |"
    assert auc[2] == "| S 0 | 0.800 | 0.600 | 0.700 |" and auc[3] == "| C 0 | 0.500 | 0.900 | 0.650 |"
    fool = m.table(result, "fool", ".0%", False)
    assert fool[2] == "| S 0 | 10% | 25% |"
    result["rows"][1]["fool"][("S", 0)] = None  # undefined (no wrong sneaky solution): a dash, not a crash
    assert m.table(result, "fool", ".0%", False)[3] == "| C 0 | – | 50% |"
