"""Runner for tool-agent: SmolLM2-135M-Instruct as a ReAct agent with a calculator, BM25 search
over the Python docs and the airoad catalog, on the hand-written tasks of
``src/airoad/llm/tool_agent_tasks.jsonl`` (arithmetic word problems, catalog facts, facts a
Python docs passage states).

1. No tools: the same model answers each question in one line (greedy, worked examples).
2. Tools, free-form calls: the ReAct loop with the model writing actions and JSON as it likes;
   malformed calls are fed back as observations.
3. Tools, constrained calls: the same loop, each action forced to a tool name and each input
   to a JSON object of the tool's schema by ``json_constrained``'s logits processor.
Success rates (Wilson intervals), steps, stop reasons, and the share of malformed calls per tool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, param, render_notes
from airoad.labs.runners import tool_agent_parts as parts
from airoad.llm import tool_agent as ref


@dataclass(frozen=True)
class Config:
    n_tasks: int = param(32, ge=3, le=32)  # tasks, taken round-robin over the three kinds
    max_steps: int = param(3, ge=1, le=12)  # thought-action-observation steps per task
    max_retries: int = param(2, ge=0, le=10)  # malformed calls in a row before giving up
    max_seconds: float = param(1_200.0, gt=0.0, le=3_600.0)  # wall-time limit per batch of tasks
    thought_tokens: int = param(16, ge=4, le=128)
    input_tokens: int = param(40, ge=16, le=128)  # JSON arguments (raised to the schema's minimum)
    answer_tokens: int = param(24, ge=4, le=128)  # the direct answer without tools
    batch_size: int = param(16, ge=1, le=64)  # prompts per SmolLM2 batch


QUICK = {"n_tasks": 3, "max_steps": 2, "thought_tokens": 6, "input_tokens": 16, "answer_tokens": 6}

NOTES = (
    "On {n_tasks} tasks SmolLM2-135M-Instruct answers {no_tools_success:.0%} correctly without "
    "tools (95% interval {no_tools_low:.2f}-{no_tools_high:.2f}), {tools_free_success:.0%} with "
    "free-form tool calls and {tools_constrained_success:.0%} with calls constrained to the "
    "schema ({tools_constrained_low:.2f}-{tools_constrained_high:.2f}): {verdict}.",
    "Malformed calls: {tools_free_malformed:.0%} of {tools_free_calls} free-form calls, "
    "{tools_constrained_malformed:.0%} of {tools_constrained_calls} constrained ones (what is "
    "left is a valid JSON object that breaks an enum); tools raised {tools_constrained_tool_errors}"
    " times under constraint, each error read back as an observation.",
    "Steps per task (limit {max_steps}): {tools_free_steps:.1f} free-form, "
    "{tools_constrained_steps:.1f} constrained; runs ending with an answer "
    "{tools_free_stop_answer:.0%} / {tools_constrained_stop_answer:.0%}, stopped by the retry "
    "limit {tools_free_stop_retries:.0%} / {tools_constrained_stop_retries:.0%}.",
    "By kind (no tools / free / constrained): arithmetic {no_tools_arithmetic:.2f} / "
    "{tools_free_arithmetic:.2f} / {tools_constrained_arithmetic:.2f}, catalog "
    "{no_tools_catalog:.2f} / {tools_free_catalog:.2f} / {tools_constrained_catalog:.2f}, docs "
    "{no_tools_docs:.2f} / {tools_free_docs:.2f} / {tools_constrained_docs:.2f}.",
    "Generation took {seconds:.0f} s wall, {cpu_seconds:.0f} CPU-s.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    tasks = parts.load_tasks(config.n_tasks)
    tools = parts.make_tools()
    model, tok = parts.load_lm(ctx)
    prompts = parts.Prompts(tok, tools)
    (answers, traces), cpu, wall = cpu_timed(
        lambda: _answer_all(config, ctx, model, tok, prompts, tasks, tools)
    )
    correct = {mode: parts.score(tasks, answers[mode]) for mode in parts.MODES}
    metrics = {"n_tasks": len(tasks), "seconds": wall, "cpu_seconds": cpu}
    for mode in parts.MODES:
        metrics |= parts.mode_metrics(mode, tasks, correct[mode], traces.get(mode))
    calls = parts.call_table(traces, [t.name for t in tools])
    metrics |= _malformed(traces) | {"verdict": _verdict(metrics)}
    parts.success_figure(metrics, ctx)
    parts.malformed_figure(calls, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="tools_constrained_success",
        library_metric="no_tools_success",
        tables={
            "tasks": parts.task_rows(tasks, answers, correct, traces),
            "calls": calls,
            "example": _example(traces["tools_constrained"], correct["tools_constrained"]),
        },  # fmt: skip
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _answer_all(config: Config, ctx: RunContext, model, tok, prompts, tasks, tools) -> tuple:
    """Direct answers, then the agent free-form and constrained, batch by batch."""
    # one model wrapper: the agent prompts reuse the cached head, the direct ones are shorter
    agent = ref.AgentLM(model, tok, config.batch_size, prompts.agent_head)
    answers = {"no_tools": parts.answer_directly(agent, prompts, tasks, config.answer_tokens)}
    tokens = (config.thought_tokens, 8, config.input_tokens)
    traces: dict[str, list] = {}
    for mode, constrained in (("tools_free", False), ("tools_constrained", True)):
        batches = [
            tasks[i : i + config.batch_size] for i in range(0, len(tasks), config.batch_size)
        ]
        traces[mode] = [
            trace
            for batch in ctx.track(batches, f"agent, {mode.replace('_', ' ')}")
            for trace in ref.run_agent(
                agent,
                [t["question"] for t in batch],
                tools,
                prompts.agent,
                config.max_steps,
                config.max_seconds,
                config.max_retries,
                constrained,
                tokens,
            )  # fmt: skip
        ]
        answers[mode] = [t.answer for t in traces[mode]]
    return answers, traces


def _malformed(traces: dict[str, list]) -> dict:
    """Calls made and the share malformed, over all tools, per mode."""
    out = {}
    for mode, runs in traces.items():
        steps = [s for t in runs for s in t.steps]
        out[f"{mode}_calls"] = len(steps)
        out[f"{mode}_malformed"] = sum(s["kind"] == "malformed" for s in steps) / max(len(steps), 1)
    return out


def _verdict(m: dict) -> str:
    """The comparison the first note states, computed from the success rates."""
    best = max(parts.MODES, key=lambda mode: m[f"{mode}_success"])
    if m["tools_constrained_success"] > m["no_tools_success"]:
        return f"constrained tool use beats answering directly (best: {best.replace('_', ' ')})"
    return f"tools do not beat answering directly here (best: {best.replace('_', ' ')})"


def _example(traces: list, correct: list[bool]) -> list[dict]:
    """The steps of the first correctly answered constrained run (else the first run)."""
    pick = next((t for t, ok in zip(traces, correct) if ok), traces[0])
    return [{"question": pick.question, "step": i + 1, **s} for i, s in enumerate(pick.steps)]
