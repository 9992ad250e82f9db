"""Grader for prompt_engineering: generated tasks re-solved from their text, chat prompts against
the tokenizer's chat template, prefix-cached batched generation on a tiny random Llama against
the uncached forward pass and ``model.generate`` (with transformers' logits processors),
sampling against the tempered softmax, answer parsing and majority vote on closed cases and
``statistics.mode``, and Wilson intervals against scipy."""

from __future__ import annotations

import re
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_testing import tiny_llama, tiny_tokenizer
from transformers import (
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

REFERENCE = "airoad.llm.prompt_engineering"
SIGNS = {"buys": 1, "finds": 1, "gets": 1, "gives": -1, "loses": -1, "sells": -1}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _ids(seed, lengths, vocab=40):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]


@pytest.mark.parametrize("difficulty", [1, 3])
def test_word_problem_answers_follow_their_text(impl, difficulty):
    """Re-solving each problem from its sentences gives its answer; seeded, no negatives, numbers in range."""
    problems = impl.word_problems(30, difficulty, seed=4)
    assert problems == impl.word_problems(30, difficulty, seed=4)
    assert problems != impl.word_problems(30, difficulty, seed=5)
    for question, answer in problems:
        total = int(re.search(r"has (\d+) ", question).group(1))
        assert 2 <= total <= 4 + 4 * difficulty, f"start outside [2, 4 + 4d]: {question}"
        steps = re.findall(r"Then \w+ (\w+) (\d+)", question)
        assert len(steps) == difficulty and question.endswith("have now?")
        for verb, n in steps:
            assert 1 <= int(n) <= 2 + 2 * difficulty, f"step outside [1, 2 + 2d]: {question}"
            total += SIGNS[verb] * int(n)
            assert total >= 0, question
        assert answer == total, question


def test_people_sentences_hold_their_fields(impl):
    """Each generated sentence names its person's name, age and city; seeded."""
    rows = impl.people(25, seed=1)
    assert rows == impl.people(25, seed=1) and len({text for text, _ in rows}) > 15
    for text, fields in rows:
        assert impl.Person.model_validate(fields)
        assert fields["name"] in text and str(fields["age"]) in text and fields["city"] in text


def test_chat_messages_lay_out_zero_and_few_shot_turns(impl):
    """System instruction, then example user/assistant pairs, then the question as a user turn."""
    zero = impl.chat_messages("Be brief.", "2+2?")
    assert zero == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    few = impl.chat_messages("Be brief.", "2+2?", [("1+1?", "2"), ("1+2?", "3")])
    assert [m["role"] for m in few] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in few[1:]] == ["1+1?", "2", "1+2?", "3", "2+2?"]


def test_chat_ids_split_the_chat_template(impl, tokenizer):
    """prefix + suffix decode to apply_chat_template's text; items of one style share the prefix."""
    examples = [("Ava has 3 apples.", "3")]
    a = impl.chat_messages("Answer with a number.", "Ben has 7 coins.", examples)
    b = impl.chat_messages("Answer with a number.", "Kira has 1 shell.", examples)
    prefix, suffix = impl.chat_ids(tokenizer, a)
    want = tokenizer.apply_chat_template(a, add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(prefix + suffix) == want
    assert impl.chat_ids(tokenizer, b)[0] == prefix
    assert tokenizer.decode(suffix).startswith("<|im_start|>user")


def test_prefix_cache_logits_equal_the_uncached_run(impl):
    """Logits after a cached prefix and left-padded suffixes equal prefix + suffix run alone."""
    model = tiny_llama(40)
    prefix, suffixes = _ids(0, [7])[0], _ids(1, [3, 8, 1, 5])
    cache = impl.prefix_cache(model, prefix)
    got = impl.next_token_logits(model, suffixes, pad_id=0, cache=cache)
    with torch.no_grad():
        for row, suffix in zip(got, suffixes):
            alone = model(input_ids=torch.tensor([prefix + suffix])).logits[0, -1]
            torch.testing.assert_close(row, alone, atol=1e-5, rtol=0)
    assert cache.get_seq_length() == len(prefix), "using the cache must not grow it"


def test_generate_after_a_cached_prefix_equals_model_generate(impl):
    """Greedy batched generation after a cached prefix gives what model.generate gives alone."""
    model = tiny_llama(40, dtype=torch.float64)
    prefix, suffixes = _ids(2, [5])[0], _ids(3, [4, 1, 9])
    got = impl.generate(model, suffixes, 10, pad_id=0, cache=impl.prefix_cache(model, prefix))
    for suffix, row in zip(suffixes, got):
        ids = torch.tensor([prefix + suffix])
        out = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None,
                             pad_token_id=0)  # fmt: skip
        assert row == out[0, ids.shape[1] :].tolist()
    assert got == impl.generate(model, [prefix + s for s in suffixes], 10, pad_id=0)


def test_processors_and_stops_act_as_in_model_generate(impl):
    """Logits processors see the ids so far, as in model.generate; a stop token ends its row."""
    model = tiny_llama(40, dtype=torch.float64)
    processors = [RepetitionPenaltyLogitsProcessor(3.0), NoRepeatNGramLogitsProcessor(2)]
    for prompt in _ids(4, [6, 2]):
        got = impl.generate(model, [prompt], 12, pad_id=0, processors=processors)[0]
        out = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                             logits_processor=LogitsProcessorList(processors),
                             eos_token_id=None, pad_token_id=0)  # fmt: skip
        assert got == out[0, len(prompt) :].tolist()
        stopped = impl.generate(model, [prompt], 12, 0, stop_ids={got[3]}, processors=processors)
        assert stopped[0] == got[: got.index(got[3])]


def test_sampling_draws_from_the_tempered_softmax(impl):
    """At temperature T the first token's frequencies match softmax(logits / T); seeded."""
    model, prompt, temperature, n = tiny_llama(8, seed=3), [3, 5, 2], 0.7, 6000
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].double()
    want = torch.softmax(logits / temperature, -1).numpy()
    draws = impl.generate(model, [prompt] * n, 1, pad_id=0, temperature=temperature, seed=11)
    freq = np.bincount([row[0] for row in draws], minlength=8) / n
    np.testing.assert_allclose(freq, want, atol=0.025, err_msg="not the tempered softmax")
    again = impl.generate(model, [prompt] * 50, 3, pad_id=0, temperature=temperature, seed=11)
    assert again == impl.generate(model, [prompt] * 50, 3, 0, temperature=temperature, seed=11)
    other = impl.generate(model, [prompt] * 50, 3, pad_id=0, temperature=temperature, seed=12)
    assert again != other, "a different seed should draw different tokens"


def test_sample_chains_repeat_each_prompt(impl):
    """sample_chains returns chains[item][sample], generate's rows for each prompt repeated."""
    model, prompts = tiny_llama(40), _ids(5, [3, 6])
    chains = impl.sample_chains(model, prompts, 3, 5, pad_id=0, temperature=1.0, seed=2)
    flat = impl.generate(model, [p for p in prompts for _ in range(3)], 5, 0, temperature=1.0,
                         seed=2)  # fmt: skip
    assert chains == [flat[:3], flat[3:]]


@pytest.mark.parametrize(
    "text,want",
    [("Answer: 42", 42), ("5 + 3 = 8, so the answer is 8.", 8), ("She has 12 now", 12),
     ("First 3, then 4. Answer: -7 apples (not 9)", -7), ("Answer: 1,234", 1234),
     ("no digits here", None), ("Answer: unknown, maybe 6", 6), ("answer:15", 15),
     ("Tom has 3, gets 2 more: 5", 5)],
)  # fmt: skip
def test_extract_number_reads_the_final_answer(impl, text, want):
    """The integer after the last "Answer:", else the last integer, else None."""
    assert impl.extract_number(text) == want


@pytest.mark.parametrize(
    "text,want",
    [("Positive.", "positive"), ("negative, not positive", "negative"), ("NEGATIVE", "negative"),
     ("It is unpositively odd", None), ("", None), ("The review is positive", "positive")],
)  # fmt: skip
def test_extract_label_finds_the_first_label_word(impl, text, want):
    """The label that occurs first as a whole word, in any case; None when there is none."""
    assert impl.extract_label(text, ["positive", "negative"]) == want


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 4)), max_size=9))
def test_majority_vote_equals_statistics_mode(impl, answers):
    """The vote is statistics.mode of the non-None answers (first seen wins ties); else None."""
    kept = [a for a in answers if a is not None]
    assert impl.majority_vote(answers) == (statistics.mode(kept) if kept else None)


def test_parse_json_object_and_field_accuracy(impl):
    """The first JSON object validates strictly into Person; field accuracy counts matches."""
    truth = {"name": "Ava", "age": 31, "city": "Oslo"}
    good = impl.parse_json_object('Sure! {"name": "ava ", "age": 31, "city": "Lima"} done')
    assert good is not None and impl.field_accuracy(good, truth) == pytest.approx(2 / 3)
    for bad in [
        '{"name": "Ava", "age": "31", "city": "Oslo"}',
        '{"name": "Ava", "age": 31}',
        '{"name": "Ava", "age": 31, "city": "Oslo", "x": 1}',
        "{name: Ava}",
        "none",
    ]:
        assert impl.parse_json_object(bad) is None, bad  # fmt: skip
    assert impl.field_accuracy(None, truth) == 0.0


@pytest.mark.parametrize("k,n,level", [(0, 10, 0.95), (7, 60, 0.95), (59, 60, 0.9), (30, 60, 0.99),
                                       (1, 1, 0.95), (13, 40, 0.8)])  # fmt: skip
def test_wilson_interval_equals_scipy(impl, k, n, level):
    """Wilson's score interval equals scipy's binomtest(...).proportion_ci(method="wilson")."""
    from scipy.stats import binomtest

    want = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    np.testing.assert_allclose(impl.wilson_interval(k, n, level), [want.low, want.high],
                               atol=1e-12)  # fmt: skip
