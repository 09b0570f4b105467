"""The round metrics' pure functions, on hand-computed values."""

import math

from pvg.game.metrics import auroc, legibility_metrics, sneaky_score_gap


def test_auroc_counts_ties_half():
    assert auroc([3.0, 1.0, 2.0], [True, False, False]) == 1.0
    assert auroc([1.0, 1.0], [True, False]) == 0.5
    assert math.isnan(auroc([1.0], [True]))


def test_sneaky_score_gap_compares_sneaky_wrong_with_helpful_correct_only():
    scores = [4.0, 2.0, 9.0, 1.0, 3.0, 9.0]
    correct = [True, True, False, False, False, True]
    roles = ["helpful", "helpful", "helpful", "sneaky", "sneaky", "sneaky"]
    # helpful correct: (4 + 2) / 2 = 3; sneaky wrong: (1 + 3) / 2 = 2; a wrong helpful and a right sneaky one do not count
    assert sneaky_score_gap(scores, correct, roles) == -1.0
    assert legibility_metrics(scores, correct, roles, "helpful_median")["sneaky_score_gap"] == -1.0
    assert math.isnan(sneaky_score_gap([1.0, 2.0], [True, True], ["helpful", "sneaky"]))
