"""Grader for tool_agent: the constraints through ``json_constrained``, the agent loop's control
flow on a scripted fake model (malformed calls, tool errors, step, retry and time limits,
batching), and constrained generation on a tiny random Llama. The tools it runs are the
reference ``agent_tools`` (graded by ``test_agent_tools.py``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_testing import tiny_llama, tiny_tokenizer

from airoad.llm.agent_tools import calculator_tool, catalog_tool, finish_tool, object_schema

REFERENCE = "airoad.llm.tool_agent"

CALL = '{"expression":"2*3"}'


# ---------------------------------------------------------------- constraints


def test_constraints_feed_the_json_processor(impl):
    """args_model gives json_constrained's fields in order; choice_automaton accepts exactly the names."""
    from airoad.llm import json_constrained as jc

    schema = object_schema(lab={"type": "string"}, n={"type": "integer"})
    assert schema["required"] == ["lab", "n"] and schema["additionalProperties"] is False
    assert jc.schema_fields(impl.args_model(schema)) == [("lab", "string"), ("n", "integer")]
    names = ["calculator", "catalog", "finish", "docs_search"]
    automaton = impl.choice_automaton(names)
    for text in [*names, "cat", "calculators", "finis", "", "docs", "Finish", "catalogs"]:
        assert jc.accepts(automaton, text) == (text in names), f"{text!r}"
    with pytest.raises(ValueError):
        impl.choice_automaton(["cat", "catalog"])


@settings(max_examples=40, deadline=None)
@given(st.text(st.sampled_from("acdfilnostu_h"), max_size=12))
def test_choice_automaton_on_random_strings(impl, text):
    """choice_automaton accepts a string exactly when it is one of the names."""
    from airoad.llm import json_constrained as jc

    names = ["calculator", "catalog", "finish", "docs_search"]
    assert jc.accepts(impl.choice_automaton(names), text) == (text in names)


def test_parse_call_explains_every_failure(impl):
    """parse_call returns the arguments of a valid call, else a message naming the problem."""
    tools = {t.name: t for t in (calculator_tool(), finish_tool())}
    assert impl.parse_call("calculator", CALL, tools) == ({"expression": "2*3"}, "")
    args, err = impl.parse_call("calc", CALL, tools)
    assert args is None and "calc" in err and "calculator" in err and "finish" in err
    args, err = impl.parse_call("calculator", '{"expression": "2*3"', tools)
    assert args is None and "JSON" in err
    args, err = impl.parse_call("calculator", '{"expr":"2*3"}', tools)
    assert args is None and "'expression' is required" in err and "'expr'" in err
    assert impl.parse_call("finish", '{"answer":"6"}', tools) == ({"answer": "6"}, "")


# ---------------------------------------------------------------- the loop on a scripted model


class ScriptedLM:
    """A fake model: each question has a list of outputs, handed out in order, one per request
    whose prompt holds that question; every request is recorded."""

    def __init__(self, scripts: dict[str, list[str]]):
        self.scripts = {q: list(s) for q, s in scripts.items()}
        self.calls: list[list] = []

    def complete(self, requests):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            q = next(q for q in self.scripts if q in r.prompt)
            out.append(self.scripts[q].pop(0) if self.scripts[q] else "finish")
        return out


def step(thought, action, text):
    return [f" {thought}", f" {action}", f" {text}"]


def prompt(question):
    return f"Question: {question}\n"


def tools_for(extra=()):
    return [calculator_tool(), finish_tool(), *extra]


def test_malformed_call_is_fed_back_and_recovered(impl):
    """A malformed call's validation error becomes the observation; the next valid call runs."""
    lm = ScriptedLM({"q": step("use it", "calculator", '{"expr":"2*3"}')
                     + step("fix it", "calculator", CALL) + step("done", "finish", '{"answer":"6"}')})  # fmt: skip
    (trace,) = impl.run_agent(lm, ["q"], tools_for(), prompt, max_steps=5)
    assert [s["kind"] for s in trace.steps] == ["malformed", "call", "finish"]
    assert "'expression' is required" in trace.steps[0]["observation"]
    assert trace.steps[1]["observation"] == "6" and trace.answer == "6" and trace.stop == "answer"
    assert trace.steps[0]["thought"] == "use it" and trace.steps[1]["input"] == CALL
    second = lm.calls[3][0].prompt  # the next step's thought sees the first step's observation
    assert "Observation: $: 'expression' is required" in second and second.endswith("Thought:")


def test_tool_error_becomes_observation(impl):
    """A tool that raises does not crash the run: 'error: <message>' is the observation."""
    lm = ScriptedLM({"q": step("t", "calculator", '{"expression":"1/0"}')
                     + step("t", "finish", '{"answer":"none"}')})  # fmt: skip
    (trace,) = impl.run_agent(lm, ["q"], tools_for(), prompt)
    assert trace.steps[0]["kind"] == "tool_error"
    assert (
        trace.steps[0]["observation"].startswith("error: ")
        and "zero" in trace.steps[0]["observation"]
    )
    assert trace.answer == "none" and trace.stop == "answer"


def test_retries_are_bounded(impl):
    """More than max_retries malformed calls in a row end the run with stop 'retries'."""
    bad = step("t", "calc", CALL) + step("t", "calculator", "not json") * 5
    (trace,) = impl.run_agent(
        ScriptedLM({"q": bad}), ["q"], tools_for(), prompt, max_retries=2, max_steps=9
    )
    assert trace.stop == "retries" and len(trace.steps) == 3 and trace.answer is None
    assert "unknown tool 'calc'" in trace.steps[0]["observation"]
    # a valid call in between resets the count
    mixed = (
        step("t", "calculator", "{}") * 2 + step("t", "calculator", CALL) + step("t", "x", "{}") * 2
    )
    (trace,) = impl.run_agent(
        ScriptedLM({"q": mixed}), ["q"], tools_for(), prompt, max_retries=2, max_steps=5
    )
    assert trace.stop == "max_steps" and len(trace.steps) == 5


def test_step_limit(impl):
    """A model that never finishes stops after max_steps steps, with no answer."""
    lm = ScriptedLM({"q": step("t", "calculator", CALL) * 10})
    (trace,) = impl.run_agent(lm, ["q"], tools_for(), prompt, max_steps=3)
    assert len(trace.steps) == 3 and trace.stop == "max_steps" and trace.answer is None
    assert len(lm.calls) == 9, "three phases (thought, action, input) per step"


def test_time_limit(impl):
    """No step starts once max_seconds have passed on the clock: stop 'time'."""
    ticks = iter(range(100))
    lm = ScriptedLM({"q": step("t", "calculator", CALL) * 10})
    (trace,) = impl.run_agent(lm, ["q"], tools_for(), prompt, max_steps=8, max_seconds=3.0,
                              clock=lambda: float(next(ticks)))  # fmt: skip
    assert trace.stop == "time" and len(trace.steps) == 2, (
        f"{len(trace.steps)} steps, stop {trace.stop}"
    )


def test_batched_questions_and_constraints(impl):
    """Live questions share each phase's batch; constrained requests carry tool names and schemas."""
    calc, fin = calculator_tool(), finish_tool()
    lm = ScriptedLM({"a?": step("t", "finish", '{"answer":"1"}'),
                     "b?": step("t", "calculator", CALL) + step("t", "finish", '{"answer":"6"}')})  # fmt: skip
    traces = impl.run_agent(lm, ["a?", "b?"], [calc, fin], prompt, tokens=(5, 6, 7))
    assert [t.answer for t in traces] == ["1", "6"] and [len(t.steps) for t in traces] == [1, 2]
    assert [len(c) for c in lm.calls] == [2, 2, 2, 1, 1, 1], "a finished question leaves the batch"
    thought, action, given_ = lm.calls[0][1], lm.calls[1][1], lm.calls[2][1]
    assert thought.choices is None and thought.schema is None and thought.max_new_tokens == 5
    assert set(action.choices) == {"calculator", "finish"} and action.max_new_tokens == 6
    assert given_.schema == calc.schema and given_.max_new_tokens == 7
    assert action.prompt.endswith("Action:") and given_.prompt.endswith(
        "Action: calculator\nAction Input:"
    )
    free = ScriptedLM({"a?": step("t", "finish", '{"answer":"1"}')})
    impl.run_agent(free, ["a?"], [calc, fin], prompt, constrained=False)
    assert all(r.choices is None and r.schema is None for c in free.calls for r in c)


# ---------------------------------------------------------------- a real (tiny random) model


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_llama(len(tok), seed=3), tok


def test_agent_lm_constrained_outputs_always_validate(impl, tiny):
    """On a random model, constrained actions are tool names and inputs validate against the schema."""
    model, tok = tiny
    calc, cat = calculator_tool(), catalog_tool(None)
    prefix = "<|im_start|>system\ntools<|im_end|>\n"
    lm = impl.AgentLM(model, tok, batch_size=2, prefix=prefix)
    prompts = [prefix + f"Q{i}: Ava has 12 apples.\nAction:" for i in range(3)]
    names = ("calculator", "catalog", "finish")
    reqs = [impl.Request(p, 8, names) for p in prompts] + [impl.Request(p, 12, None, calc.schema)
            for p in prompts] + [impl.Request("no prefix", 12, None, cat.schema)]  # fmt: skip
    out = lm.complete(reqs)
    assert all(o in names for o in out[:3]), out[:3]
    for o, schema in zip(out[3:], [calc.schema] * 3 + [cat.schema]):
        assert set(json.loads(o)) == set(schema["properties"]), f"{o!r} is not a call of the schema"
    free = lm.complete([impl.Request(p, 6) for p in prompts])
    assert all(o and "\n" not in o for o in free), f"free text stops at a newline: {free}"
    # the prefix cache changes nothing: the same requests without it give the same text
    plain = impl.AgentLM(model, tok, batch_size=3)
    assert plain.complete(reqs[:6]) == out[:6]


def test_agent_lm_reads_uncached_prompts_whole(impl, tiny):
    """A prompt that does not start with the cached prefix is fed whole, without the cache."""
    model, tok = tiny
    seen = []

    def spy(**kwargs):
        if kwargs["input_ids"].shape[1] > 1:  # a prefill, not a one-token decoding step
            seen.append((kwargs["input_ids"][0].tolist(), kwargs.get("past_key_values") is None))
        return model(**kwargs)

    lm = impl.AgentLM(spy, tok, batch_size=2, prefix="<|im_start|>system\ntools<|im_end|>\n")
    seen.clear()
    lm.complete([impl.Request("no prefix here", 3)])
    assert seen == [(tok("no prefix here", add_special_tokens=False)["input_ids"], True)]
