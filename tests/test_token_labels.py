"""Token labels for the verifier's pretraining: which tokens are judged, and where "wrong" begins."""

from __future__ import annotations

import pytest

from pvg.data.roles import verifier_text
from pvg.data.tokenizer import train_tokenizer
from pvg.game.verifier_train import departure_labels, token_logits

QUESTION = "Sam has 12 pens. Sam buys 5 more. Sam gives away 3. How many pens does Sam have now?"
REFERENCE = "buys 5 more: 12 + 5 = 17\ngives away 3: 17 - 3 = 14\n#### 14"


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([QUESTION, REFERENCE, "buys 6 more: 12 + 6 = 18\n#### 18"])


def labelled(tok, solution: str) -> list[tuple[str, int]]:
    out = departure_labels(tok, verifier_text(QUESTION, ""), verifier_text(QUESTION, solution),
                           verifier_text(QUESTION, REFERENCE), max_length=256)
    assert len(out.input_ids) == len(out.labels)
    return [(tok.decode([i]), y) for i, y in zip(out.input_ids, out.labels)]


def solution_part(pairs):
    """The labels after the question's tokens (which are never judged)."""
    judged = [i for i, (_, y) in enumerate(pairs) if y != -100]
    assert all(y == -100 for _, y in pairs[: judged[0]]), "the question is not judged"
    return pairs[judged[0]:]


def test_the_reference_is_right_everywhere(tok):
    pairs = labelled(tok, REFERENCE)
    assert "".join(t for t, _ in pairs).startswith(QUESTION)
    assert {y for _, y in solution_part(pairs)} == {1}


def test_a_misread_quantity_is_wrong_from_its_first_token_on(tok):
    part = solution_part(labelled(tok, "buys 6 more: 12 + 6 = 18\n#### 18"))
    text = [t for t, _ in part]
    first_bad = text.index(" 6")
    assert [y for _, y in part[:first_bad]] == [1] * first_bad  # "buys" is still right
    assert [y for _, y in part[first_bad:]] == [0] * (len(part) - first_bad)


def test_a_dropped_step_is_wrong_where_the_text_departs(tok):
    part = solution_part(labelled(tok, "buys 5 more: 12 + 5 = 17\n#### 17"))
    text = [t for t, _ in part]
    first_bad = text.index("#")  # the reference goes on with "gives", this one answers already
    assert set(y for _, y in part[:first_bad]) == {1} and set(y for _, y in part[first_bad:]) == {0}


def test_a_miscopied_answer_is_wrong_only_in_its_answer(tok):
    # Every line is the reference's; only the final number is not the last line's result, so the
    # one token judged wrong is the answer itself, which is where the verifier's score is read.
    part = solution_part(labelled(tok, REFERENCE.replace("#### 14", "#### 15")))
    assert "".join(t for t, _ in part).endswith("#### 15")
    assert [y for _, y in part] == [1] * (len(part) - 1) + [0], part  # "15" is "1" "5" here: "1" is right


def test_token_logits_reads_the_score_head_at_every_position(tok):
    from pvg.config import TinyModelConfig
    from pvg.game.models import build_tiny_causal_lm, load_verifier

    short = departure_labels(tok, verifier_text(QUESTION, ""), verifier_text(QUESTION, "#### 14"),
                             verifier_text(QUESTION, REFERENCE), 256)
    long = departure_labels(tok, verifier_text(QUESTION, ""), verifier_text(QUESTION, REFERENCE),
                            verifier_text(QUESTION, REFERENCE), 256)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        build_tiny_causal_lm(tok, TinyModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
                             seed=0).save_pretrained(d)
        model = load_verifier(d, tok.pad_token_id)
    logits, labels, last = token_logits(model, [short, long], tok.pad_token_id)
    assert logits.shape == labels.shape == (2, len(long.input_ids))
    assert last.tolist() == [len(short.input_ids) - 1, len(long.input_ids) - 1]
    assert (labels[0, len(short.input_ids):] == -100).all()  # padding is never judged
    # The last real token's logit is the verifier's score (what score_texts returns).
    from pvg.game.verifier_train import score_texts

    tok.padding_side = "right"
    expected = score_texts(model, tok, [verifier_text(QUESTION, REFERENCE)], 256)[0]
    assert abs(logits[1, last[1]].item() - expected) < 1e-4
