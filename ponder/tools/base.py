"""Tools a model can call: plain typed Python functions with a JSON schema from the signature.

Use ``@tool`` on a function (sync or returning any JSON-able value) to register it by name, or
``Tool.from_function(fn)`` to wrap one without registering. The parameter schema is derived from
the type hints with pydantic; the description is the docstring's first paragraph; a parameter
annotated ``Annotated[int, "what it is"]`` gets that description. ``Tool.call`` never raises: bad
arguments and exceptions come back as an ``"error: ..."`` string for the model to read; argument
keys the function does not take are dropped (small models echo schema keys).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ponder.named_registry import Registry

_TOOLS: Registry[Tool] = Registry("tool", lambda: _load_builtins())
MAX_RESULT_CHARS = 4000


@dataclass(frozen=True)
class Tool:
    """A callable plus its OpenAI tools-API schema."""

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[BaseModel]

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None) -> Tool:
        hints = get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {fn.__name__}: *args/**kwargs cannot be described")
            ann = hints.get(pname, str)
            desc = None
            if get_origin(ann) is Annotated:
                base, *meta = get_args(ann)
                desc = next((m for m in meta if isinstance(m, str)), None)
                ann = base
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (ann, Field(default, description=desc))
        model = create_model(  # type: ignore[call-overload]
            f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields
        )
        doc = inspect.getdoc(fn) or ""
        return cls(
            name=name or fn.__name__,
            description=doc.split("\n\n")[0].replace("\n", " ").strip(),
            fn=fn,
            args_model=model,
        )

    def schema(self) -> dict[str, Any]:
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        for prop in params.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def call(self, arguments: str | dict[str, Any] | None) -> str:
        """Run the tool on JSON ``arguments``; the result (or the error) as text for the model."""
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else (arguments or {})
            if not isinstance(args, dict):
                return f"error: arguments must be a JSON object, got {type(args).__name__}"
            # small models echo schema keys ("required", ...) as arguments: drop unknown keys
            args = {k: v for k, v in args.items() if k in self.args_model.model_fields}
            parsed = self.args_model.model_validate(args)
        except json.JSONDecodeError as exc:
            return f"error: arguments are not valid JSON: {exc}"
        except ValidationError as exc:
            probs = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            return f"error: bad arguments for {self.name}: {probs}"
        try:
            result = self.fn(**{k: getattr(parsed, k) for k in type(parsed).model_fields})
        except Exception as exc:  # a tool error is information for the model, not a crash
            return f"error: {type(exc).__name__}: {exc}"
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        return text[:MAX_RESULT_CHARS]


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register ``fn`` as a tool (``@tool`` or ``@tool(name="...")``); returns ``fn`` unchanged."""

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        t = Tool.from_function(f, name)
        _TOOLS.add(t.name, t, replace=True)
        return f

    return register(fn) if fn is not None else register


def get_tool(name: str, field: str = "tools") -> Tool:
    return _TOOLS.get(name, field)


def tool_names() -> list[str]:
    return _TOOLS.names()


def resolve_tools(items: Iterable[str | Tool | Callable[..., Any]]) -> list[Tool]:
    """Tools from names (registered), ``Tool`` objects, or plain functions."""
    out: list[Tool] = []
    for i, item in enumerate(items):
        if isinstance(item, Tool):
            out.append(item)
        elif isinstance(item, str):
            out.append(get_tool(item, f"tools.{i}"))
        else:
            out.append(Tool.from_function(item))
    return out


def _load_builtins() -> None:
    import ponder.tools  # noqa: F401  (registers calculator and search_problems)
