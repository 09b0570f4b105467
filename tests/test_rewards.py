"""Role-conditioned rewards (DESIGN.md, "One round"), checked against hand-computed numbers."""

import pytest

from pvg.game.rewards import cgc_reward, compute_rewards, goodhart_reward, normalize_per_group, src_reward

# ---------------------------------------------------------------- V' = V - mean over (problem, role)


def test_normalize_single_group():
    assert normalize_per_group([1.0, 2.0, 6.0], ["a", "a", "a"]) == pytest.approx([-2.0, -1.0, 3.0])


def test_normalize_roles_of_same_problem_are_separate():
    scores = [1.0, 3.0, 10.0, 20.0]
    groups = [("p1", "helpful"), ("p1", "helpful"), ("p1", "sneaky"), ("p1", "sneaky")]
    # helpful mean 2, sneaky mean 15 (not the problem-wide mean 8.5)
    assert normalize_per_group(scores, groups) == pytest.approx([-1.0, 1.0, -5.0, 5.0])


def test_normalize_interleaved_groups():
    scores = [4.0, 0.0, 2.0, 1.0, -3.0]
    groups = [("p1", "helpful"), ("p2", "helpful"), ("p1", "helpful"), ("p1", "sneaky"), ("p2", "helpful")]
    # (p1,h): mean 3 -> 1, -1 ; (p2,h): mean -1.5 -> 1.5, -1.5 ; (p1,s): single -> 0
    assert normalize_per_group(scores, groups) == pytest.approx([1.0, 1.5, -1.0, 0.0, -1.5])


def test_normalize_singleton_groups_give_zero():
    assert normalize_per_group([5.0, -7.5], [("p1", "helpful"), ("p1", "sneaky")]) == [0.0, 0.0]


# ---------------------------------------------------------------- SRC


@pytest.mark.parametrize(
    "v_rel, correct, helpful, expected",
    [
        (0.5, True, True, 0.5),  # helpful & correct: +V'
        (0.5, False, True, -0.5),  # helpful & incorrect: -V'
        (0.5, True, False, -0.5),  # sneaky & correct: -V'
        (0.5, False, False, 0.5),  # sneaky & incorrect: +V'
        (2.25, True, True, 2.25),
        (2.25, False, False, 2.25),
        (-0.3, True, True, -1.0),  # V' <= 0: -1 whatever the role
        (-0.3, False, True, -1.0),
        (-0.3, True, False, -1.0),
        (-0.3, False, False, -1.0),
        (0.0, True, True, -1.0),  # exactly 0 is not > 0
        (0.0, False, False, -1.0),
        (0.0, False, True, -1.0),
        (-5.0, True, False, -1.0),
    ],
)
def test_src_reward(v_rel, correct, helpful, expected):
    assert src_reward(v_rel, correct, helpful) == pytest.approx(expected)


# ---------------------------------------------------------------- CGC and goodhart


@pytest.mark.parametrize(
    "v, correct, helpful, expected",
    [
        (1.5, True, True, 1.5),  # helpful & correct: aligned -> V
        (1.5, False, False, 1.5),  # sneaky & incorrect: aligned -> V
        (-0.7, True, True, -0.7),
        (1.5, False, True, -2.0),  # helpful & incorrect: V0
        (1.5, True, False, -2.0),  # sneaky & correct: V0
    ],
)
def test_cgc_reward_default_v0(v, correct, helpful, expected):
    assert cgc_reward(v, correct, helpful) == pytest.approx(expected)


def test_cgc_reward_custom_v0():
    assert cgc_reward(3.0, False, True, v0=-7.5) == pytest.approx(-7.5)
    assert cgc_reward(3.0, True, False, v0=0.25) == pytest.approx(0.25)
    assert cgc_reward(3.0, True, True, v0=-7.5) == pytest.approx(3.0)
    assert cgc_reward(3.0, False, False, v0=-7.5) == pytest.approx(3.0)


@pytest.mark.parametrize("v", [-3.0, 0.0, 0.4, 12.0])
def test_goodhart_reward_is_the_score(v):
    assert goodhart_reward(v) == v


# ---------------------------------------------------------------- compute_rewards end to end

# 2 problems x 2 roles x b=2, interleaved on purpose.
PIDS = ["p1", "p1", "p1", "p1", "p2", "p2", "p2", "p2"]
ROLES = ["helpful", "sneaky", "helpful", "sneaky", "helpful", "sneaky", "helpful", "sneaky"]
SCORES = [1.0, 0.5, 3.5, -0.5, -1.0, 2.0, -1.0, 4.5]
CORRECT = [False, False, True, True, True, False, False, True]
# V' per (problem, role):
#   (p1,helpful) 1.0, 3.5  mean 2.25 -> -1.25, 1.25
#   (p1,sneaky)  0.5,-0.5  mean 0    ->  0.5, -0.5
#   (p2,helpful) -1, -1    mean -1   ->  0,    0
#   (p2,sneaky)  2.0, 4.5  mean 3.25 -> -1.25, 1.25
# V' in batch order: [-1.25, 0.5, 1.25, -0.5, 0, -1.25, 0, 1.25]
EXPECTED = {
    # SRC: V'>0 at 1 (sneaky, incorrect: +0.5), 2 (helpful, correct: +1.25), 7 (sneaky, correct: -1.25)
    "src": [-1.0, 0.5, 1.25, -1.0, -1.0, -1.0, -1.0, -1.25],
    # CGC: aligned at 1 (s,F), 2 (h,T), 4 (h,T), 5 (s,F)
    "cgc": [-2.0, 0.5, 3.5, -2.0, -1.0, 2.0, -2.0, -2.0],
    "goodhart": [1.0, 0.5, 3.5, -0.5, -1.0, 2.0, -1.0, 4.5],
}


@pytest.mark.parametrize("kind", ["src", "cgc", "goodhart"])
def test_compute_rewards_batch(kind):
    got = compute_rewards(kind, SCORES, CORRECT, ROLES, PIDS)
    assert got == pytest.approx(EXPECTED[kind])


def test_compute_rewards_cgc_custom_v0():
    got = compute_rewards("cgc", SCORES, CORRECT, ROLES, PIDS, cgc_v0=-5.0)
    assert got == pytest.approx([-5.0, 0.5, 3.5, -5.0, -1.0, 2.0, -5.0, -5.0])


def test_compute_rewards_src_normalizes_per_role_not_per_problem():
    # Over the whole problem p1 the mean would be 1.125, index 1 would get V' = -0.625 and reward -1;
    # per (problem, role) its V' is +0.5 and, being sneaky and incorrect, its reward is +0.5.
    got = compute_rewards("src", SCORES, CORRECT, ROLES, PIDS)
    assert got[1] == pytest.approx(0.5)


def test_compute_rewards_unknown_kind():
    with pytest.raises(ValueError):
        compute_rewards("nope", SCORES, CORRECT, ROLES, PIDS)
