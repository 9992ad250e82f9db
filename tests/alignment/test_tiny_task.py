"""The post-training labs' shared task: splits, template, checker and the real-scale parser."""

from __future__ import annotations

import pytest

from airoad.alignment import tiny_task
from airoad.alignment.tiny_task import TOKENIZER, Problem


def test_splits_are_disjoint_and_seeded():
    train = tiny_task.problems(3000, seed=1)
    test = tiny_task.problems(3000, seed=1, split="test")
    assert {(p.a, p.b) for p in train}.isdisjoint({(p.a, p.b) for p in test})
    assert train == tiny_task.problems(3000, seed=1)
    assert train != tiny_task.problems(3000, seed=2)


def test_held_out_share_is_one_in_ten():
    import numpy as np

    a, b = np.meshgrid(np.arange(100), np.arange(100))
    share = tiny_task._is_test(a.ravel(), b.ravel()).mean()
    assert 0.07 < share < 0.13, f"held-out share {share:.3f}, expected about 0.1"


def test_prompts_have_one_length_and_answers_are_sums():
    items = tiny_task.problems(500, seed=0)
    assert {len(p.prompt) for p in items} == {5}
    assert all(int(p.answer) == p.a + p.b for p in items)
    assert Problem(7, 45).prompt == "07+45" and Problem(7, 45).answer == "52"
    assert tiny_task.prompt_batch(items[:4]).shape == (4, 8)


def test_chat_template_and_tokenizer_round_trip():
    ids = tiny_task.chat_example("07+45", "52")
    prompt = tiny_task.chat_prompt("07+45")
    assert ids[: len(prompt)] == prompt
    assert ids[0] == TOKENIZER.bos_id and ids[-1] == TOKENIZER.end_id
    assert TOKENIZER.decode(ids) == "07+4552"
    assert TOKENIZER.decode(TOKENIZER.encode("12+3=15\n")) == "12+3=15\n"
    with pytest.raises(ValueError, match="alphabet"):
        TOKENIZER.encode("12-3")


def test_checker_and_real_scale_parser():
    p = Problem(7, 45)
    assert (
        tiny_task.check(p, "52") and not tiny_task.check(p, "052") and not tiny_task.check(p, "5")
    )
    assert tiny_task.parse_number("The answer is 1,234.") == "1234"
    assert tiny_task.parse_number("no digits") is None
    assert tiny_task.check_text(p, "Sum: 52") and tiny_task.check_text(p, "52.")
    assert not tiny_task.check_text(p, "7 + 45 = 52"), "the FIRST integer is the answer"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        tiny_task.problems(3, 0, split="dev")
    with pytest.raises(ValueError, match=">= 0"):
        tiny_task.problems(-1, 0)
