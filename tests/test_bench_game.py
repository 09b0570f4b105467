"""bench/bench_game.py's near-miss measure: how close a prover phase came to an exploit."""

import json

import pytest
import yaml

from benchkit import bench_script


def bench():
    return bench_script("bench_game")


def batch(rate, wrong, right):
    return {"kind": "ppo", "round": 0, "window_sneaky_incorrect_rate": rate,
            "window_sneaky_incorrect_mean_score": wrong, "window_helpful_correct_mean_score": right}


def test_closest_gap_reads_only_full_windows_wrong_enough():
    b = bench()
    batches = [batch(1.0, 9.0, 0.0),   # window not yet full (size 2): ignored whatever its gap
               batch(0.96, 1.0, 2.5),  # gap -1.5
               batch(0.90, 5.0, 2.0),  # not wrong enough: ignored
               batch(0.95, 2.2, 2.5)]  # gap -0.3, at the bar: counts
    assert abs(b.closest_gap(batches, 0.95, 2) - (-0.3)) < 1e-9
    assert b.closest_gap(batches[:1], 0.95, 2) is None
    assert b.closest_gap([batch(0.5, 3.0, 1.0)] * 3, 0.95, 2) is None


def test_round_rows_carry_the_gap_from_the_run_config(tmp_path):
    rows = [batch(0.97, 2.0, 3.0), batch(0.97, 2.5, 3.0),
            {"kind": "round", "round": 0, "steps_to_exploit": None},
            dict(batch(0.99, 4.0, 3.5), round=1), {"kind": "round", "round": 1, "steps_to_exploit": 0}]
    rows[3]["sneaky_incorrect_rate"] = 0.98
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"ppo": {"exploit_incorrect_rate": 0.95, "exploit_window": 1}}))
    got = bench().round_rows(tmp_path)
    assert [round(r["closest_gap"], 6) for r in got] == [-0.5, 0.5]
    assert got[1]["phase_end_sneaky_incorrect"] == 0.98 and got[0]["phase_end_sneaky_incorrect"] is None


def test_the_phase_end_rate_is_the_last_ten_batches():
    b = bench()
    batches = [{"sneaky_incorrect_rate": 0.0}] * 2 + [{"sneaky_incorrect_rate": 0.9}] * 5 + [{"sneaky_incorrect_rate": 1.0}] * 5
    assert abs(b.phase_end_rate(batches) - 0.95) < 1e-9  # the first two fall outside the last ten
    assert b.phase_end_rate([{"sneaky_incorrect_rate": None}] * 3) is None and b.phase_end_rate([]) is None


def test_round_table_shows_the_eval_score_gap_and_a_dash_for_runs_without_it(tmp_path):
    rows = [batch(0.97, 2.0, 3.0), {"kind": "round", "round": 0, "sneaky_score_gap": 0.25},
            dict(batch(0.97, 2.0, 3.0), round=1), {"kind": "round", "round": 1}]  # a run from before the metric
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"ppo": {"exploit_incorrect_rate": 0.95, "exploit_window": 1}}))
    lines = bench().table(tmp_path).splitlines()
    column = lines[0].split(" | ").index("the same over every eval solution")
    assert [line.split(" | ")[column] for line in lines[2:]] == ["+0.25", "—"]


def test_a_stored_attack_joins_the_every_seed_table(tmp_path):
    rows = [batch(0.97, 2.0, 3.0), {"kind": "round", "round": 0, "steps_to_exploit": None, "verifier_auroc": 0.5,
                                     "sneaky_fool_rate": 0.4, "helpful_pass_rate": 0.9}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"run": {"name": "t"}, "ppo": {"exploit_incorrect_rate": 0.95, "exploit_window": 1}}))
    b = bench()
    assert b.stored_attack(tmp_path, "cgc") is None
    with pytest.raises(SystemExit, match="pvg eval attack RUN --reward cgc"):
        b.tabulate([f"0={tmp_path}"], attack_reward="cgc")  # no seed attacked: nothing to add
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "attack_cgc.json").write_text(json.dumps(
        {"reward": "cgc", "max_steps": 300, "rounds": [{"round": 0, "exploited": True, "steps_to_exploit": 41},
                                                       {"round": 1, "exploited": False, "steps_to_exploit": None}]}))
    table = b.across_seeds({0: (tmp_path, None), 1: (tmp_path, None)}, {0: b.stored_attack(tmp_path, "cgc")})
    head, _, row, unattacked = table.splitlines()
    assert head.endswith("attacker's steps to exploit, by round |") and row.endswith("| 41 / > 300 |")
    assert unattacked.endswith("| — |")
