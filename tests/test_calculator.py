"""The calculator in the decoding loop: what it writes, that sampling obeys it, and that PPO ignores it."""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
import torch

from pvg.game.calculator import Calculator, answer_completion, completion, format_number
from pvg.game.generation import generate
from pvg.game.ppo import PPOTrainer, pad_episodes
from pvg.data.solution_check import error_kind, first_departure, wrong_calculations
from pvg.data.synth import generate as synth_generate
from pvg.data.tokenizer import train_tokenizer


@pytest.mark.parametrize("text, expected", [
    ("buys 5 more: 12 + 5 =", " 17\n"),
    ("gives away 4: 12 - 40 =", " -28\n"),
    ("3 boxes of 9: 3 * 9 =", " 27\n"),
    ("splits into 2: 7 / 2 =", " 3.5\n"),
    ("splits into 3: 7 / 3 =", None),  # not a terminating decimal: the model writes it itself
    ("splits into 0: 7 / 0 =", None),
    ("Natalia sold <<48/2=", "24>>"),
    ("so 12 + 5 = 17", None),  # already computed
    ("#### 17", None),
])
def test_completion(text, expected):
    assert completion(text) == expected


@pytest.mark.parametrize("response, expected", [
    ("buys 5 more: 12 + 5 = 17\ngives away 3: 17 - 3 = 14\n####", " 14"),
    ("so 48/2 = <<48/2=24>>24 clips\n####", " 24"),
    ("buys 5 more: 12 + 5 = 17\n###", None),  # the answer line is not open yet
    ("buys 5 more: 12 + 5 = 17\n#### 17", None),  # already answered
    ("####", None),  # nothing computed to repeat
    ("a: 2 # 3\n2 + 2 = 4 ####", None),  # `####` that does not open a line
])
def test_answer_completion(response, expected):
    assert answer_completion(response) == expected


def test_format_number():
    assert format_number(Fraction(18)) == "18"
    assert format_number(Fraction(1, 4)) == "0.25"
    assert format_number(Fraction(1, 3)) is None


def test_solution_check_reads_lines():
    text = "buys 5 more: 12 + 5 = 18\nin all: 18 * 2 = 36\n#### 36"
    assert wrong_calculations(text) == [0]
    assert error_kind(text, correct=False) == "arithmetic"
    assert error_kind("a: 2 + 2 = 4\n#### 4", correct=False) == "structural"
    assert error_kind("a: 2 + 2 = 4\n#### 4", correct=True) == "correct"
    ref = "a: 2 + 2 = 4\nb: 4 * 3 = 12\n#### 12"
    assert first_departure("a: 2 + 2 = 4\nb: 4 + 3 = 7\n#### 7", ref) == 1
    assert first_departure(ref, ref) is None
    assert first_departure("a: 2 + 2 = 4\n#### 4", ref) == 1


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained tiny Llama: its samples are noise, so every right result is the calculator's doing."""
    from transformers import LlamaConfig, LlamaForCausalLM

    problems = synth_generate(50, seed=3, min_steps=2, max_steps=3)
    tok = train_tokenizer([p.question for p in problems] + [p.compact_reference for p in problems])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    return model, tok


def test_sampling_with_calculator_forces_right_results(tiny_model):
    model, tok = tiny_model
    # Prompts that end mid-line in a calculation, so the very first tokens must be the calculator's.
    prompts = ["<helpful> Sam has 12 pens.\nbuys 5 more: 12 + 5 =", "<helpful> Ana has $3.\nearns $4: 3 * 4 ="]
    samples = generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, seed=0, calculator=True)
    for s, want in zip(samples, [" 17\n", " 12\n"]):
        assert s.text.startswith(want), s.text
        n = len(tok(want, add_special_tokens=False)["input_ids"])
        assert s.forced[:n] == [True] * n
    plain = generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, seed=0, calculator=False)
    assert all(s.forced is None for s in plain)
    assert [s.text for s in plain] != [s.text for s in samples]


@pytest.mark.parametrize("answer", [True, False])
def test_calculator_writes_the_answer_line(tiny_model, answer):
    """Once the response opens `####`, the last result is forced, token by token (with `answer`)."""
    _, tok = tiny_model
    prompt = tok("<helpful> Sam has 12 pens.\n", add_special_tokens=False)["input_ids"]
    response = tok("buys 5 more: 12 + 5 = 17\n####", add_special_tokens=False)["input_ids"]
    want = tok(" 17", add_special_tokens=False)["input_ids"]
    calc = Calculator(tok, len(prompt), answer=answer)
    ids = prompt + response
    for step in range(len(want)):
        scores = calc(torch.tensor([ids]), torch.zeros(1, len(tok)))
        chosen = int(scores[0].argmax())
        if not answer:
            assert (scores == 0).all() and not calc.forced
            return
        assert chosen == want[step] and scores[0].isinf().sum() == len(tok) - 1
        ids = ids + [chosen]
    assert calc.forced == {(0, len(response) + j) for j in range(len(want))}
    assert tok.decode(ids[len(prompt):]).endswith("#### 17")
    assert (calc(torch.tensor([ids]), torch.zeros(1, len(tok))) == 0).all()  # and then nothing more


def test_forced_tokens_are_not_actions():
    b = pad_episodes([[1, 2], [3]], [[4, 5, 6], [7, 8]], pad_id=0, scores=[1.0, -1.0],
                     forced=[[False, True, False], None])
    assert b.mask.tolist() == [[0, 1, 1, 1], [1, 1, 0, 0]]
    assert b.action_mask.tolist() == [[0, 1, 0, 1], [1, 1, 0, 0]]
    plain = pad_episodes([[1, 2]], [[4, 5]], pad_id=0, scores=[1.0], forced=[[False, False]])
    assert plain.action_mask is None and torch.equal(plain.act, plain.mask)


def test_ppo_gives_forced_tokens_no_gradient():
    """A reward for a forced token must not move the policy's probability of that token."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvg.config import PPOConfig

    torch.manual_seed(0)
    policy = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                                          pad_token_id=0, eos_token_id=2))
    ref = copy.deepcopy(policy).requires_grad_(False)
    trainer = PPOTrainer(policy, ref, PPOConfig(minibatch_size=4, kl_coef=0.0), seed=0)

    def logp(prompt, token):
        with torch.no_grad():
            return torch.log_softmax(policy(input_ids=torch.tensor([prompt])).logits[0, -1], -1)[token].item()

    before_free, before_forced = logp([3, 4], 5), logp([3, 4, 5], 6)
    # Episode: prompt [3, 4], response [5 (chosen), 6 (forced)], always rewarded.
    batch = lambda: pad_episodes([[3, 4]] * 4, [[5, 6]] * 4, 0, [1.0, 1.0, -1.0, 1.0], forced=[[False, True]] * 4)  # noqa: E731
    for _ in range(3):
        trainer.update(batch())
    assert logp([3, 4], 5) != pytest.approx(before_free, abs=1e-4)  # the chosen token learned
    # the forced one only moves through shared weights, far less than the chosen one
    assert abs(logp([3, 4, 5], 6) - before_forced) < abs(logp([3, 4], 5) - before_free)


@pytest.mark.parametrize("text, kind", [
    ("a: 2 + 2 = 4\n#### 4", "dropped"),
    ("a: 2 + 2 = 4\nb: 4 * 3 = 12\nc: 12 - 1 = 11\n#### 11", "extra"),
    ("a: 2 + 2 = 4\nb: 4 + 3 = 7\n#### 7", "wrong_op"),
    ("a: 2 + 2 = 4\nb: 4 * 5 = 20\n#### 20", "operand"),
    ("a: 2 + 2 = 4\nb: 2 * 5 = 10\n#### 10", "operands"),
    ("a: 2 + 2 = 4\nb: 4 * 3 = 12\n#### 13", "answer_line"),
])
def test_departure_kind(text, kind):
    from pvg.data.solution_check import departure_kind

    assert departure_kind(text, "a: 2 + 2 = 4\nb: 4 * 3 = 12\n#### 12") == kind
