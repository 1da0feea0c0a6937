"""What a chat request asks of a chain: which chain, the ``Task`` it runs, and each run's budget.

Use these on a parsed ``ChatRequest`` before any run starts: ``resolve_chain`` tells a chain
request from a pass-through one, ``task_from_request`` turns the messages (and any tools) into a
``Task``, ``check_takes_tools`` refuses tools a chain cannot take, ``run_budget`` shares the
chain's token budget between the request's ``n`` runs, and ``run_thinking`` reads the request's
thinking budget (``reasoning_effort``, ``ponder.thinking_budget``). Each raises a 400
``ApiError`` for a request the chain cannot serve; none does I/O.
"""

from __future__ import annotations

from ponder.protocol.actions import Task
from ponder.protocol.thinking_budget import ThinkingBudget
from ponder.serve.config import CHAIN_PREFIX, ChainSpec, ServeConfig
from ponder.serve.errors import ApiError
from ponder.serve.parsing import ChatRequest, check_tools, message_text


def resolve_chain(
    config: ServeConfig, req: ChatRequest
) -> tuple[str, ChainSpec, str | None] | None:
    """``(chain name, spec, upstream model)`` for a chain request, ``None`` for pass-through."""
    from_body = req.ponder.get("chain")
    if req.model.startswith(CHAIN_PREFIX):
        name, _, upstream_model = req.model[len(CHAIN_PREFIX) :].partition("/")
        if from_body is not None and from_body != name:
            raise ApiError(
                400, f"model names chain {name!r} but ponder.chain is {from_body!r}", param="model"
            )
    elif from_body is not None:
        name, upstream_model = str(from_body), req.model
    else:
        return None
    spec = config.chains.get(name)
    if spec is None:
        valid = ", ".join(config.chain_names()) or "(none configured)"
        raise ApiError(
            400,
            f"unknown chain {name!r}; valid chains: {valid} "
            "(use model 'ponder:<chain>' or 'ponder:<chain>/<upstream model>')",
            param="model",
            code="unknown_chain",
        )
    return name, spec, upstream_model or None


def is_agent_turn(req: ChatRequest) -> bool:
    """Tools offered, or tool turns in the transcript: the chain must take them as they are."""
    return bool(req.raw.get("tools")) or any(
        m["role"] == "tool" or (m["role"] == "assistant" and m.get("tool_calls"))
        for m in req.messages
    )


def task_from_request(req: ChatRequest) -> Task:
    """The ``Task`` a chain runs: system/developer messages as its system prompt; an agent turn
    keeps its transcript and tools as they are, a plain one folds earlier turns into the
    question."""
    messages = req.messages
    system = (
        "\n\n".join(message_text(m) for m in messages if m["role"] in ("system", "developer"))
        or None
    )
    turns = [m for m in messages if m["role"] not in ("system", "developer")]
    if is_agent_turn(req):
        check_tools(req.raw)
        if not turns or turns[-1]["role"] not in ("user", "tool"):
            raise ApiError(
                400,
                "a chain request with tools must end with a user or tool message",
                param="messages",
            )
        users = [m for m in turns if m["role"] == "user"]
        if not users:
            raise ApiError(400, "a chain request needs a user message", param="messages")
        return Task(
            question=message_text(users[-1]),
            system=system,
            messages=tuple(turns),
            tools=tuple(req.raw.get("tools") or ()),
            tool_choice=req.raw.get("tool_choice"),
        )
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "a chain request must end with a user message", param="messages")
    question = message_text(turns[-1])
    if len(turns) > 1:
        history = "\n\n".join(f"{m['role'].capitalize()}: {message_text(m)}" for m in turns[:-1])
        question = f"Conversation so far:\n{history}\n\nUser: {question}"
    if not question.strip():
        raise ApiError(400, "the last user message is empty", param="messages")
    return Task(question=question, system=system)


def check_takes_tools(name: str, spec: ChainSpec, task: Task) -> None:
    """A chain that cannot take the client's tools is a 400 naming it and why, never a silent
    drop of the tools."""
    if not task.is_agent_turn:
        return
    why = spec.strategy.tools_unsupported()
    if why is not None:
        raise ApiError(
            400,
            f"chain {name!r} cannot take tools: {why}; use a chain of cot or sample/adaptive "
            "over cot with majority voting, or send the request without a chain (pass-through)",
            param="tools",
            code="tools_unsupported",
        )


def run_budget(spec: ChainSpec, req: ChatRequest) -> int | None:
    """Each run's budget. A chain budget bounds one *request*: its ``n`` runs share it equally
    (``budget // n`` each), so a client's ``n`` never multiplies what the operator allowed."""
    asked = req.ponder.get("budget_tokens")
    cap = spec.budget.total_tokens
    if asked is not None:
        if not isinstance(asked, int) or isinstance(asked, bool) or asked <= 0:
            raise ApiError(
                400, "ponder.budget_tokens must be a positive integer", param="ponder.budget_tokens"
            )
        cap = asked if cap is None else min(asked, cap)
    if cap is None:
        return None
    share = cap // req.n
    if share < 1:
        raise ApiError(
            400,
            f"the chain's token budget of {cap} cannot be shared by n={req.n} runs",
            param="n",
            code="budget_too_small",
        )
    return share


def run_thinking(spec: ChainSpec, req: ChatRequest) -> ThinkingBudget | None:
    """Each call's thinking budget: the request's ``ponder.thinking_budget`` (tokens) or its
    ``reasoning_effort`` (looked up in the chain's ``thinking.efforts``), never above the chain's
    own; else the chain's (``None``: unbounded). A bad value is a 400 naming the field."""
    tokens = req.ponder.get("thinking_budget")
    if tokens is not None and (
        not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1
    ):
        raise ApiError(
            400,
            "ponder.thinking_budget must be a positive integer (thinking tokens per call)",
            param="ponder.thinking_budget",
        )
    effort = req.raw.get("reasoning_effort")
    valid = spec.thinking.efforts
    if effort is not None and (not isinstance(effort, str) or effort not in valid):
        raise ApiError(
            400,
            f"'reasoning_effort' must be one of {', '.join(valid)} for chain requests, "
            f"got {effort!r}",
            param="reasoning_effort",
        )
    chain = spec.thinking_limit()
    asked = spec.thinking.budget(tokens, effort)
    if asked is None:
        return chain
    if chain is not None and chain.tokens < asked.tokens:
        return chain  # the operator's budget is the most a request may think
    return asked
