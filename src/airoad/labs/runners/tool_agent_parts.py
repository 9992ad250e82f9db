"""Parts of the tool-agent runner: the task file, the tools over real data (the Python docs
through the ``python-docs`` registry entry, the airoad catalog), SmolLM2 behind the agent's
``complete`` interface, the prompts, the three ways of answering, scoring and the figures."""

from __future__ import annotations

import json
from importlib.resources import files
from itertools import zip_longest
from typing import Any

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.llm import agent_tools
from airoad.llm import prompt_engineering as pe
from airoad.llm import tool_agent as ref

KINDS = ("arithmetic", "catalog", "docs")
MODES = ("no_tools", "tools_free", "tools_constrained")
SYSTEM = (
    "You answer questions by calling tools. Tools:\n{tools}\n"
    "Write one step at a time:\nThought: what to do next\nAction: one tool name\n"
    "Action Input: a JSON object with the tool's keys\n"
    "Then read the Observation. When you know the answer, call finish."
)
DIRECT = "Answer the question. Reply with the answer only."
# Worked examples, one per tool (none of them is an evaluation task).
EXAMPLES = (
    ("What is 23 times 19?", "calculator", {"expression": "23*19"}, "437"),
    ("In which phase is the airoad lab 'cnn'?", "catalog", {"lab": "cnn", "field": "phase"},
     "deep-learning"),
    ("What does the Python del statement delete?", "docs_search", {"query": "del statement"},
     "del: Deletion of a target list recursively deletes each target", "each target"),
)  # fmt: skip


def load_tasks(n: int) -> list[dict]:
    """The first `n` tasks of ``tool_agent_tasks.jsonl`` taken round-robin over the kinds, so
    a small run still has every kind."""
    text = files("airoad.llm").joinpath("tool_agent_tasks.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise AiroadError("src/airoad/llm/tool_agent_tasks.jsonl holds no task: restore it")
    by_kind = [[r for r in rows if r["kind"] == k] for k in KINDS]
    order = [r for group in zip_longest(*by_kind) for r in group if r is not None]
    return order[:n]


def make_tools() -> list[agent_tools.Tool]:
    """calculator, docs search over the Python docs topics (chunked as in the retrieval lab),
    the airoad catalog, and finish."""
    from airoad.catalog import load_catalog
    from airoad.data import load
    from airoad.rag.corpus import pydoc_chunks

    chunks = pydoc_chunks(dict(load("python-docs")))
    docs = agent_tools.docs_tool([c.title for c in chunks], [c.text for c in chunks])
    return [
        agent_tools.calculator_tool(),
        docs,
        agent_tools.catalog_tool(load_catalog()),
        agent_tools.finish_tool(),
    ]


def _example_turns(tools: list[agent_tools.Tool]) -> list[dict]:
    turns = []
    for question, tool, args, observation, *answer in EXAMPLES:
        call = json.dumps(args, separators=(",", ":"))
        final = json.dumps({"answer": answer[0] if answer else observation}, separators=(",", ":"))
        text = (f"Thought: I should use the {tool} tool.\nAction: {tool}\nAction Input: {call}\n"
                f"Observation: {observation}\nThought: I know the answer.\nAction: finish\n"
                f"Action Input: {final}\n")  # fmt: skip
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
    return turns


class Prompts:
    """The agent's and the direct prompts on SmolLM2's chat template: a shared head (system
    message + worked examples, cached once) and the question."""

    def __init__(self, tok: Any, tools: list[agent_tools.Tool]):
        lines = []
        for t in tools:
            keys = {
                k: "..." if p["type"] == "string" else 0 for k, p in t.schema["properties"].items()
            }
            enum = {k: p["enum"] for k, p in t.schema["properties"].items() if "enum" in p}
            extra = f" ({', '.join(f'{k} is one of {v}' for k, v in enum.items())})" if enum else ""
            shape = json.dumps(keys, separators=(",", ":"))
            lines.append(f"- {t.name}: {t.description}. Input: {shape}{extra}")
        self.tok = tok
        system = SYSTEM.format(tools="\n".join(lines))
        self.agent_turns = [{"role": "system", "content": system}, *_example_turns(tools)]
        direct = [(q, a[0] if a else o) for q, _, _, o, *a in EXAMPLES]
        self.direct_turns = [{"role": "system", "content": DIRECT}] + [
            m for q, a in direct
            for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
        ]  # fmt: skip
        self.agent_head = tok.apply_chat_template(self.agent_turns, tokenize=False)
        self.direct_head = tok.apply_chat_template(self.direct_turns, tokenize=False)

    def _render(self, turns: list[dict], head: str, question: str) -> str:
        messages = [*turns, {"role": "user", "content": question}]
        full = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not full.startswith(head):
            raise AiroadError("the chat template does not render the question after the examples")
        return full

    def agent(self, question: str) -> str:
        return self._render(self.agent_turns, self.agent_head, question)

    def direct(self, question: str) -> str:
        return self._render(self.direct_turns, self.direct_head, question)


def load_lm(ctx: RunContext) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct and its tokenizer (the registry's offline copy)."""
    from airoad.data.models import load_smollm2

    with ctx.step("loading SmolLM2-135M-Instruct"):
        return load_smollm2()


def answer_directly(lm: ref.AgentLM, prompts: Prompts, tasks: list[dict], tokens: int) -> list:
    """The same model answering each question in one line, without tools (greedy)."""
    replies = lm.complete([ref.Request(prompts.direct(t["question"]), tokens) for t in tasks])
    return [r.strip() for r in replies]


def score(tasks: list[dict], answers: list) -> list[bool]:
    return [agent_tools.check_answer(a, t["gold"], t["check"]) for t, a in zip(tasks, answers)]


def mode_metrics(mode: str, tasks: list[dict], correct: list[bool], traces: list | None) -> dict:
    """Success rate with its Wilson interval, per kind; steps and stop reasons for agents."""
    n, hits = len(tasks), int(sum(correct))
    low, high = pe.wilson_interval(hits, n)
    out = {f"{mode}_success": hits / n, f"{mode}_low": low, f"{mode}_high": high}
    for kind in KINDS:
        mine = [c for t, c in zip(tasks, correct) if t["kind"] == kind]
        out[f"{mode}_{kind}"] = float(np.mean(mine)) if mine else float("nan")
    if traces is not None:
        out[f"{mode}_steps"] = float(np.mean([len(t.steps) for t in traces]))
        for stop in ("answer", "max_steps", "retries", "time"):
            out[f"{mode}_stop_{stop}"] = sum(t.stop == stop for t in traces) / n
        steps = [s for t in traces for s in t.steps]
        out[f"{mode}_tool_errors"] = sum(s["kind"] == "tool_error" for s in steps)
    return out


def call_table(traces: dict[str, list], tool_names: list[str]) -> list[dict]:
    """Per tool (and "unknown" names): calls made and the share malformed, free vs constrained."""
    rows = []
    for name in [*tool_names, "unknown"]:
        row = {"tool": name}
        for mode, runs in traces.items():
            steps = [s for t in runs for s in t.steps
                     if s["action"] == name or (name == "unknown" and s["action"] not in tool_names)]  # fmt: skip
            bad = sum(s["kind"] == "malformed" for s in steps)
            row |= {
                f"{mode}_calls": len(steps),
                f"{mode}_malformed": bad / len(steps) if steps else 0.0,
            }
        rows.append(row)
    return rows


def task_rows(
    tasks: list[dict], answers: dict[str, list], correct: dict[str, list], traces: dict
) -> list:
    rows = []
    for i, t in enumerate(tasks):
        row = {"id": t["id"], "kind": t["kind"], "gold": t["gold"]}
        for mode in MODES:
            row |= {f"{mode}_answer": answers[mode][i], f"{mode}_ok": correct[mode][i]}
            if mode in traces:
                row[f"{mode}_steps"] = len(traces[mode][i].steps)
        rows.append(row)
    return rows


def success_figure(metrics: dict, ctx: RunContext) -> None:
    """Success rate per task kind for the three ways of answering."""
    labels = {"no_tools": "no tools", "tools_free": "tools, free-form calls",
              "tools_constrained": "tools, calls constrained to the schema"}  # fmt: skip
    with figure(ctx, "success_by_kind", figsize=(7.5, 4)) as (_, ax):
        width = 0.8 / len(MODES)
        groups = [*KINDS, "all"]
        for j, mode in enumerate(MODES):
            vals = [metrics[f"{mode}_{k}"] for k in KINDS] + [metrics[f"{mode}_success"]]
            ax.bar(np.arange(len(groups)) + j * width, vals, width, label=labels[mode])
        ax.set_xticks(np.arange(len(groups)) + width, groups)
        ax.set(ylabel="share of tasks answered correctly", ylim=(0, 1.15),
               title="SmolLM2-135M-Instruct with and without tools")  # fmt: skip
        ax.legend(fontsize=8, loc="upper left", ncols=1)


def malformed_figure(rows: list[dict], ctx: RunContext) -> None:
    """Share of malformed calls per tool, free-form against constrained decoding."""
    rows = [r for r in rows if r["tools_free_calls"] or r["tools_constrained_calls"]]
    with figure(ctx, "malformed_calls", figsize=(7.5, 4)) as (_, ax):
        x = np.arange(len(rows))
        for j, mode in enumerate(("tools_free", "tools_constrained")):
            ax.bar(x + j * 0.4, [r[f"{mode}_malformed"] for r in rows], 0.4,
                   label=mode.replace("tools_", "calls ").replace("free", "free-form"))  # fmt: skip
        ax.set_xticks(x + 0.2, [f"{r['tool']}\n({r['tools_free_calls']} / "
                                f"{r['tools_constrained_calls']} calls)" for r in rows], fontsize=8)  # fmt: skip
        ax.set(ylabel="share of calls malformed", ylim=(0, 1.1),
               title="Malformed tool calls: free-form vs JSON-constrained")  # fmt: skip
        ax.legend(fontsize=8)
