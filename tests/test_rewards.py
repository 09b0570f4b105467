"""Role-conditioned rewards (docs/design.md, "One round"), checked against hand-computed numbers."""

import pytest

import random

from pvg.game.exploit import ExploitWindow, batch_parts, decide
from pvg.game.rewards import (cgc_gate, cgc_reward, compute_rewards, correctness_reward, episode_roles,
                              goodhart_reward, identical_group_share, leave_one_out, normalize_per_group, src_ordered_reward, src_reward)

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


@pytest.mark.parametrize(
    "v_rel, correct, helpful, expected",
    [
        (0.5, True, True, 0.5),  # aligned: as src
        (0.5, False, False, 0.5),
        (-0.3, True, True, -1.0),
        (0.5, False, True, -1.5),  # helpful & incorrect, a little convincing: src pays -0.5, above -1
        (0.5, True, False, -1.5),  # sneaky & correct
        (2.25, True, False, -3.25),
        (-0.3, False, True, -1.0),  # unconvincing and misaligned: -1, as src
        (0.0, True, False, -1.0),
    ],
)
def test_src_ordered_reward(v_rel, correct, helpful, expected):
    assert src_ordered_reward(v_rel, correct, helpful) == pytest.approx(expected)


def test_src_pays_a_slightly_convincing_wrong_helpful_solution_more_than_a_correct_one():
    """The bleed src_ordered removes: one helpful group of three identical correct samples and one
    wrong sample the verifier scores a little higher (V' = 0.3 > 0, the correct ones' V' = -0.1)."""
    scores, correct = [2.6, 2.6, 2.6, 3.0], [True, True, True, False]
    roles, pids = ["helpful"] * 4, ["p"] * 4
    src = compute_rewards("src", scores, correct, roles, pids)
    assert src[3] > max(src[:3])  # -0.3 against -1: the wrong one is paid more
    ordered = compute_rewards("src_ordered", scores, correct, roles, pids)
    assert ordered[3] < min(ordered[:3])


@pytest.mark.parametrize("seed", range(25))
def test_src_ordered_never_pays_a_misaligned_solution_more_than_an_aligned_one(seed):
    rng = random.Random(seed)
    n = 8
    scores = [rng.uniform(-4, 4) for _ in range(n)]
    correct = [rng.random() < 0.5 for _ in range(n)]
    role = rng.choice(["helpful", "sneaky"])
    got = compute_rewards("src_ordered", scores, correct, [role] * n, ["p"] * n)
    aligned = [r for r, c in zip(got, correct) if c == (role == "helpful")]
    misaligned = [r for r, c in zip(got, correct) if c != (role == "helpful")]
    if aligned and misaligned:
        assert max(misaligned) <= min(aligned)


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
def test_cgc_reward(v, correct, helpful, expected):
    assert cgc_reward(v, correct, helpful, v0=-2.0) == pytest.approx(expected)


def test_cgc_gate_sits_margin_below_the_batch_minimum():
    assert cgc_gate([1.0, -3.25, 2.0], margin=1.0) == pytest.approx(-4.25)
    assert cgc_gate([5.0, 7.0], margin=0.5) == pytest.approx(4.5)  # a batch of high scores: the gate moves up
    assert cgc_gate([5.0, 7.0], margin=0.5, fixed=-2.0) == -2.0  # a fixed V0 is taken as given


def test_cgc_batch_gate_with_scores_below_the_old_constant():
    # scores reach -3.5, below the old constant -2: the gate follows them to -4.5
    scores, correct = [-3.5, 0.0, 2.0, -2.5], [False, True, True, True]
    roles = ["sneaky", "sneaky", "helpful", "helpful"]
    got = compute_rewards("cgc", scores, correct, roles, ["p1"] * 4)
    assert got == pytest.approx([-3.5, -4.5, 2.0, -2.5])


@pytest.mark.parametrize("seed", range(25))
def test_cgc_a_sneaky_correct_solution_earns_less_than_every_sneaky_incorrect_one(seed):
    """Whatever the scores (any spread, any sign, any offset), under the default gate."""
    rng = random.Random(seed)
    n = rng.randint(4, 40)
    offset, spread = rng.uniform(-50, 50), rng.choice([0.01, 1.0, 3.0, 100.0])
    scores = [offset + spread * rng.gauss(0, 1) for _ in range(n)]
    roles = [rng.choice(["helpful", "sneaky"]) for _ in range(n)]
    correct = [rng.random() < 0.5 for _ in range(n)]
    roles[:2], correct[:2] = ["sneaky", "sneaky"], [True, False]  # at least one of each
    got = compute_rewards("cgc", scores, correct, roles, [f"p{i % 3}" for i in range(n)])
    sneaky_right = [r for r, c, role in zip(got, correct, roles) if role == "sneaky" and c]
    sneaky_wrong = [r for r, c, role in zip(got, correct, roles) if role == "sneaky" and not c]
    assert max(sneaky_right) < min(sneaky_wrong)
    helpful_right = [r for r, c, role in zip(got, correct, roles) if role == "helpful" and c]
    helpful_wrong = [r for r, c, role in zip(got, correct, roles) if role == "helpful" and not c]
    if helpful_right and helpful_wrong:
        assert max(helpful_wrong) < min(helpful_right)


@pytest.mark.parametrize("correct, helpful, expected", [(True, True, 1.0), (False, True, 0.0),
                                                        (False, False, 1.0), (True, False, 0.0)])
def test_correctness_reward(correct, helpful, expected):
    assert correctness_reward(correct, helpful) == expected


def test_correctness_needs_no_verifier_and_trains_the_helpful_role_alone():
    assert compute_rewards("correctness", None, [True, False], ["helpful", "helpful"], ["p1", "p1"]) == [1.0, 0.0]
    assert episode_roles("correctness") == ("helpful",)
    assert episode_roles("src") == episode_roles("cgc") == ("helpful", "sneaky")
    with pytest.raises(ValueError):
        compute_rewards("src", None, [True], ["helpful"], ["p1"])


def test_leave_one_out_baseline():
    # group a: 1, 2, 6 -> 1 - 4, 2 - 3.5, 6 - 1.5 ; group b alone -> 0
    got = leave_one_out([1.0, 2.0, 5.0, 6.0], ["a", "a", "b", "a"])
    assert got == pytest.approx([-3.0, -1.5, 0.0, 4.5])
    # the baseline sums to zero over a group
    assert sum(got[i] for i in (0, 1, 3)) == pytest.approx(0.0)


def test_identical_group_share():
    texts = ["a", "a", "a", "b", "c", "c", "x"]
    groups = [("p1", "helpful"), ("p1", "helpful"), ("p2", "helpful"), ("p2", "helpful"),
              ("p1", "sneaky"), ("p1", "sneaky"), ("p3", "helpful")]
    # helpful: p1 all "a" (identical), p2 "a"/"b" (not), p3 one sample (identical): 2 of 3
    assert identical_group_share(texts, groups, "helpful") == pytest.approx(2 / 3)
    assert identical_group_share(texts, groups, "sneaky") == 1.0
    assert identical_group_share(texts, groups, "other") is None
    # where a group is identical, SRC pays every sample -1: V' is 0 throughout
    assert compute_rewards("src", [2.0, 2.0], [True, True], ["helpful"] * 2, ["p1"] * 2) == [-1.0, -1.0]


# ---------------------------------------------------------------- the exploit test (the paper's definition)


def check_exploit(scores, correct, roles, incorrect_rate=0.95, answered=None):
    """One batch alone: a window of one, as the game's test reads each batch."""
    return ExploitWindow(1, incorrect_rate).add(*batch_parts(scores, correct, roles, answered))


def test_exploit_compares_sneaky_incorrect_scores_with_helpful_correct_ones():
    roles = ["sneaky"] * 20 + ["helpful"] * 4
    correct = [False] * 19 + [True] + [True, True, True, False]
    # the one correct sneaky solution scores 100: averaging all sneaky ones would call this an exploit
    scores = [1.0] * 19 + [100.0] + [2.0, 2.0, 2.0, 9.0]
    check = check_exploit(scores, correct, roles, 0.95)
    assert check.sneaky_incorrect_rate == pytest.approx(0.95)
    assert check.sneaky_incorrect_score == pytest.approx(1.0) and check.helpful_correct_score == pytest.approx(2.0)
    assert not check.exploited
    scores[:19] = [2.0] * 19  # the incorrect ones now reach the helpful correct mean: exploited
    assert check_exploit(scores, correct, roles, 0.95).exploited


def test_exploit_needs_the_incorrect_rate():
    roles, correct = ["sneaky"] * 10 + ["helpful"], [False] * 9 + [True] + [True]
    scores = [5.0] * 10 + [1.0]
    assert not check_exploit(scores, correct, roles, 0.95).exploited  # 90% incorrect
    assert check_exploit(scores, correct, roles, 0.9).exploited


def test_no_helpful_correct_solution_is_no_exploit():
    assert not check_exploit([5.0, 5.0, 1.0], [False, False, False], ["sneaky", "sneaky", "helpful"]).exploited
    assert not check_exploit([1.0], [True], ["helpful"]).exploited  # no sneaky role at all


def test_the_exploit_window_pools_its_batches_and_waits_for_all_of_them():
    w = ExploitWindow(2, 0.95)
    # a lucky first batch (wrong at 3 against helpful correct at 1) is no exploit on its own: the window is not full
    first = w.add([3.0, 3.0], 2, [1.0])
    assert not first.exploited and first.sneaky_incorrect_score == pytest.approx(3.0)
    # pooled with an unlucky one: wrong (3 + 3 - 3 - 3) / 4 = 0 under helpful (1 + 1) / 2 = 1
    second = w.add([-3.0, -3.0], 2, [1.0])
    assert second.sneaky_incorrect_score == pytest.approx(0.0) and second.helpful_correct_score == pytest.approx(1.0)
    assert not second.exploited
    # the first batch leaves the window: wrong (-3 - 3 + 2 + 4) / 4 = 0 against helpful (1 + 0) / 2 = 0.5: no;
    assert not w.add([2.0, 4.0], 2, [0.0]).exploited
    # then wrong (2 + 4 + 1 + 1) / 4 = 2 against helpful (0 + 2 + 2) / 3 = 4/3: exploited
    got = w.add([1.0, 1.0], 2, [2.0, 2.0])
    assert got.helpful_correct_score == pytest.approx(4 / 3) and got.exploited


def test_the_exploit_window_pools_the_incorrect_rate_and_takes_a_fixed_target():
    w = ExploitWindow(2, 0.95, target=0.5)
    w.add([1.0, 1.0], 2)
    # 3 of 4 wrong (75%) although the wrong ones average 1 >= 0.5: no exploit
    got = w.add([1.0], 2)
    assert got.sneaky_incorrect_rate == pytest.approx(0.75) and not got.exploited
    assert ExploitWindow(1, 0.95, target=0.5).add([0.5, 0.5], 2).exploited  # the target, not a helpful batch
    assert not ExploitWindow(1, 0.95).add([0.5, 0.5], 2).exploited  # no target and no helpful correct: no exploit


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
    # CGC: aligned at 1 (s,F), 2 (h,T), 4 (h,T), 5 (s,F); V0 = min(V) - 1 = -2
    "cgc": [-2.0, 0.5, 3.5, -2.0, -1.0, 2.0, -2.0, -2.0],
    # src_ordered: as src, but the misaligned index 7 (sneaky, correct, V' = 1.25) earns -1 - 1.25
    "src_ordered": [-1.0, 0.5, 1.25, -1.0, -1.0, -1.0, -1.0, -2.25],
    "goodhart": [1.0, 0.5, 3.5, -0.5, -1.0, 2.0, -1.0, 4.5],
    "correctness": [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
}


@pytest.mark.parametrize("kind", ["src", "src_ordered", "cgc", "goodhart", "correctness"])
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


# ---------------------------------------------------------------- a sneaky solution must state a wrong answer


def test_states_answer():
    from pvg.data.grading import states_answer

    assert states_answer("buys 13 more: 13 + 13 = 26\n#### 26")
    assert not states_answer("")
    assert not states_answer("plays")  # what a sneaky-only attacker wrote when fragments scored high
    assert not states_answer("buys 13 more: 13 + 13 = 26")  # cut off before its answer line


def test_a_sneaky_solution_without_an_answer_is_rewarded_as_a_failed_sneaky_one():
    # one sneaky group: a stated wrong answer (score 1.0), a fragment the verifier likes (3.0), a correct one (0.5)
    scores, correct, answered = [1.0, 3.0, 0.5], [False, False, True], [True, False, True]
    roles, pids = ["sneaky"] * 3, ["p"] * 3
    plain = compute_rewards("src", scores, correct, roles, pids)
    assert plain[1] == max(plain)  # graded on correctness alone, the fragment wins
    got = compute_rewards("src", scores, correct, roles, pids, answered=answered)
    # V' = [-0.5, 1.5, -1.0]: the fragment is misaligned now (-V' = -1.5), the others get -1
    assert got == pytest.approx([-1.0, -1.5, -1.0])
    assert compute_rewards("src_ordered", scores, correct, roles, pids, answered=answered)[1] == pytest.approx(-2.5)
    # a helpful solution without an answer is incorrect already: `answered` changes nothing there
    h = compute_rewards("src", scores, correct, ["helpful"] * 3, pids, answered=answered)
    assert h == compute_rewards("src", scores, correct, ["helpful"] * 3, pids)


def test_fragments_do_not_count_towards_an_exploit():
    roles = ["helpful", "helpful", "sneaky", "sneaky", "sneaky", "sneaky"]
    scores = [2.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    correct = [True, True, False, False, False, False]
    assert check_exploit(scores, correct, roles).exploited
    answered = [True, True, True, False, False, False]  # three of the four "wrong" ones are fragments
    got = check_exploit(scores, correct, roles, answered=answered)
    assert got.sneaky_incorrect_rate == pytest.approx(0.25) and not got.exploited


def test_an_exploit_needs_the_fresh_batch_too_and_draws_it_only_when_the_window_passes():
    drawn = []

    def fresh(parts):
        return lambda: drawn.append(parts) or parts

    w = ExploitWindow(1, 0.95)
    # the window fails (wrong 0 < helpful 1): no fresh batch is drawn
    got = decide(w, ([0.0, 0.0], 2, [1.0]), fresh(([9.0, 9.0], 2, [0.0])))
    assert not got.exploited and got.fresh is None and drawn == []
    # the window passes (wrong 2 >= helpful 1) but the fresh batch's wrong ones average 0.5 under its
    # helpful correct ones' 1.5: no exploit, and the fresh batch's numbers are returned
    got = decide(w, ([2.0, 2.0], 2, [1.0]), fresh(([0.0, 1.0], 2, [1.5])))
    assert got.window.exploited and not got.exploited and len(drawn) == 1
    assert got.fresh.sneaky_incorrect_score == pytest.approx(0.5) and got.fresh.helpful_correct_score == pytest.approx(1.5)
    # both pass: an exploit
    assert decide(w, ([2.0, 2.0], 2, [1.0]), fresh(([2.0, 1.0], 2, [1.5]))).exploited
    # the fresh batch is held to the same incorrect-rate bar: 1 wrong of 2 is 50% < 95%
    assert not decide(w, ([2.0, 2.0], 2, [1.0]), fresh(([3.0], 2, [1.5]))).exploited
    # an attacker's fixed target applies to the fresh batch (no helpful role there)
    t = ExploitWindow(1, 0.95, target=1.0)
    assert not decide(t, ([2.0, 2.0], 2), fresh(([0.9, 0.9], 2))).exploited
    assert decide(t, ([2.0, 2.0], 2), fresh(([1.0, 1.0], 2))).exploited
    # without a fresh batch the window decides alone
    assert decide(ExploitWindow(1, 0.95), ([2.0, 2.0], 2, [1.0]), None).exploited
