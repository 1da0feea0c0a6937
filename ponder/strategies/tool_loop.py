"""A tool-use loop with summarization-based context management (SUPO-style).

Use ``ToolLoop`` when the model should call tools (OpenAI tools API, function calling) over many
turns. Each turn the model either calls tools, whose results are appended as ``tool`` messages, or
answers. When the working context (the last call's prompt + completion, as the backend counted
them, plus a tiktoken estimate of the tool results appended since) passes ``context_limit``, the
history is replaced by an LLM-written summary that keeps the task, the tool results that matter and
the progress, and the loop continues from the question plus that summary. At most
``max_summary_rounds`` rounds; it may be raised at test time beyond what a config was tuned for.

Tools are names registered with ``@ponder.tools.tool`` (built in: ``calculator``,
``search_problems``), ``Tool`` objects, or plain typed functions. The flow never runs a tool
itself: it yields ``CallTool`` and the engine runs the tools in-process, off the event loop, with a
timeout (``tool_timeout_s``), counting them in usage and the trace; a tool error or timeout goes
back to the model as a tool message. A reply
that is only a JSON tool call written as text (small models do this) is run as a tool call too
(``parse_text_tool_calls``, the parser the OpenAI-compatible backend and the proxy share,
``ponder.protocol.tool_calls``). Every
tool call, result and summary (with the dropped messages) is a ``decision`` event in the trace.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from ponder.answers import extract_answer, last_boxed
from ponder.prompts import load_template
from ponder.protocol.actions import (
    CallTool,
    Flow,
    Generate,
    Note,
    Outcome,
    Task,
    ToolCall,
    ToolResult,
)
from ponder.protocol.requests import Completion, GenerationRequest, Message, SamplingParams
from ponder.protocol.strategy import Strategy
from ponder.protocol.tokens import CHAT_OVERHEAD_PER_MESSAGE, estimate_tokens
from ponder.protocol.tool_calls import parse_text_tool_calls
from ponder.strategies.cot import RESTART_VARIABLES, restart_messages, system_prompt
from ponder.strategies.registry import register_strategy
from ponder.tools.base import Tool, resolve_tools

SUMMARY_VARIABLES = {"question", "summary", "transcript"}


def transcript(messages: list[Message]) -> str:
    """A plain-text rendering of a chat history with tool calls, for the summarizer."""
    lines: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "tool":
            lines.append(f"TOOL RESULT ({m.get('name', 'tool')}): {m.get('content')}")
            continue
        if m.get("content"):
            lines.append(f"{str(role).upper()}: {m['content']}")
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", {})
            lines.append(f"ASSISTANT CALLED {fn.get('name')}({fn.get('arguments')})")
    return "\n".join(lines)


def text_tool_calls(text: str, tools: dict[str, Tool], turn: int = 0) -> list[dict[str, Any]]:
    """A tool call written as plain text, as small models often do instead of the structured
    form: the shared parser (``ponder.protocol.tool_calls.parse_text_tool_calls``) over the
    loop's tools. Only a reply that is wholly calls to known tools counts."""
    return parse_text_tool_calls(text, tools)


@register_strategy
class ToolLoop(Strategy):
    """Multi-turn tool use with LLM-written summaries when the context passes a limit."""

    name: ClassVar[str] = "tool_loop"

    tools: tuple[Any, ...] = ("calculator", "search_problems")
    context_limit: int = Field(2048, gt=0)
    max_summary_rounds: int = Field(2, ge=0)
    max_turns: int = Field(8, gt=0)
    max_tokens: int = Field(256, gt=0)
    summary_max_tokens: int = Field(256, gt=0)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = None
    parse_text_tool_calls: bool = True
    system_template: str = "tool_system"
    user_template: str = "cot_user"
    restart_template: str = "tool_restart_user"
    summary_system_template: str = "tool_summary_system"
    summary_template: str = "tool_summary_user"

    @field_validator("tools")
    @classmethod
    def _tools_resolve(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        resolve_tools(value)  # unknown names fail here, at config load, listing the valid ones
        return value

    @model_validator(mode="after")
    def _templates_valid(self) -> ToolLoop:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed={"question"})
        load_template(self.restart_template, allowed=RESTART_VARIABLES)
        load_template(self.summary_system_template, allowed=())
        load_template(self.summary_template, allowed=SUMMARY_VARIABLES)
        return self

    def _start(self, task: Task, summary: str | None) -> list[Message]:
        if summary is not None:
            return list(
                restart_messages(task, self.system_template, self.restart_template, summary)
            )
        system = system_prompt(task, self.system_template)
        user = load_template(self.user_template, allowed={"question"}).render(
            question=task.question
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _params(self, max_tokens: int, offset: int) -> SamplingParams:
        seed = None if self.seed is None else self.seed + offset
        return SamplingParams(temperature=self.temperature, max_tokens=max_tokens, seed=seed)

    def flow(self, task: Task) -> Flow:
        tools = {t.name: t for t in resolve_tools(self.tools)}
        schemas = tuple(t.schema() for t in tools.values())
        messages = self._start(task, None)
        summary: str | None = None
        summaries: list[str] = []
        tool_calls = 0
        text = ""
        for turn in range(self.max_turns):
            request = GenerationRequest(
                messages=tuple(messages),
                tools=schemas,
                params=self._params(self.max_tokens, turn),
                purpose="tool_turn",
            )
            [result] = yield Generate.of(request)
            if not isinstance(result, Completion):
                if not result.budget:
                    raise result.error
                return self._outcome(text, "budget", turn, tool_calls, summaries, limited=True)
            choice = result.choices[0]
            text = choice.text
            context = result.prompt_tokens + choice.completion_tokens
            calls = choice.tool_calls
            if not calls and self.parse_text_tool_calls:
                calls = text_tool_calls(text, tools, turn)
                if calls:
                    text = ""
                    yield Note("text_tool_call", {"parsed": calls})
            if not calls:
                return self._outcome(text, "answered", turn + 1, tool_calls, summaries)
            messages.append({"role": "assistant", "content": text or None, "tool_calls": calls})
            outputs = yield from self._run_tools(tools, calls)
            for call, output in zip(calls, outputs, strict=True):
                tool_calls += 1
                fn = call.get("function", {})
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.get("id") or f"call_{tool_calls}",
                        "name": fn.get("name"),
                        "content": output,
                    }
                )
                context += estimate_tokens(output) + CHAT_OVERHEAD_PER_MESSAGE
                yield Note(
                    "tool_call",
                    {"tool": fn.get("name"), "arguments": fn.get("arguments"), "result": output},
                )
            if context <= self.context_limit:
                continue
            if len(summaries) >= self.max_summary_rounds:
                yield Note("context_limit", {"context_tokens": context, "rounds": len(summaries)})
                return self._outcome(text, "context_limit", turn + 1, tool_calls, summaries)
            summarized = yield from self._summarize(task, summary, messages, len(summaries))
            if not isinstance(summarized, Completion):
                if not summarized.budget:
                    raise summarized.error
                return self._outcome(text, "budget", turn + 1, tool_calls, summaries, limited=True)
            summary = summarized.choices[0].text.strip()
            yield Note(
                "summarized",
                {
                    "round": len(summaries) + 1,
                    "context_tokens": context,
                    "dropped_messages": messages[1:],
                    "summary": summary,
                },
            )
            summaries.append(summary)
            messages = self._start(task, summary)
        return self._outcome(text, "max_turns", self.max_turns, tool_calls, summaries)

    def _summarize(
        self, task: Task, summary: str | None, messages: list[Message], round_: int
    ) -> Any:
        system = load_template(self.summary_system_template, allowed=()).render()
        user = load_template(self.summary_template, allowed=SUMMARY_VARIABLES).render(
            question=task.question, summary=summary or "", transcript=transcript(messages)
        )
        request = GenerationRequest(
            messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
            params=self._params(self.summary_max_tokens, 1000 + round_),
            purpose="summarize",
        )
        [result] = yield Generate.of(request)
        return result

    @staticmethod
    def _run_tools(tools: dict[str, Tool], calls: list[dict[str, Any]]) -> Any:
        """The text result of each call: the engine performs the known tools (``CallTool``:
        off the event loop, with a timeout, in the trace); an unknown name is answered here."""
        outputs: list[str | None] = []
        wanted: list[ToolCall] = []
        for call in calls:
            fn = call.get("function") or {}
            name = fn.get("name")
            tool = tools.get(str(name))
            if tool is None:
                known = ", ".join(sorted(tools))
                outputs.append(f"error: unknown tool {name!r}; available tools: {known}")
                continue
            args = fn.get("arguments")
            args = args if isinstance(args, str | dict) else json.dumps(args)
            wanted.append(ToolCall(tool.name, args, tool.call))
            outputs.append(None)
        results: list[ToolResult] = (yield CallTool.of(*wanted)) if wanted else []
        done = iter(results)
        return [out if out is not None else next(done).text for out in outputs]

    @staticmethod
    def _outcome(
        text: str,
        stop_reason: str,
        turns: int,
        tool_calls: int,
        summaries: list[str],
        limited: bool = False,
    ) -> Outcome:
        return Outcome(
            answer=extract_answer(text) if stop_reason == "answered" else last_boxed(text),
            text=text,
            budget_limited=limited,
            data={
                "stop_reason": stop_reason,
                "turns": turns,
                "tool_calls": tool_calls,
                "summaries": summaries,
            },
        )

    def roles(self) -> set[str]:
        return {"default"}
