"""Load and validate jinja2 prompt templates.

Templates live in ``ponder/prompts/templates/*.j2``. A config may also name a file path of its own.
Rendering uses ``StrictUndefined`` (an undefined variable is an error, never an empty string), and
``load_template(name, allowed={...})`` checks at config-load time that the template uses no
variable the caller will not supply, so a typo fails before any model call is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from ponder.errors import PromptError

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


def template_names() -> list[str]:
    """Names of the templates shipped with Ponder."""
    root = resources.files("ponder.prompts") / "templates"
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".j2"))


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str
    variables: frozenset[str]

    def render(self, **values: Any) -> str:
        try:
            return _compiled(self.source).render(**values).strip()
        except jinja2.UndefinedError as exc:
            raise PromptError(f"template {self.name!r}: {exc}") from exc


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=128)
def _load(name: str) -> PromptTemplate:
    if name.endswith(".j2") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise PromptError(f"prompt template file {name!r} does not exist")
        source = path.read_text(encoding="utf-8")
    else:
        res = resources.files("ponder.prompts") / "templates" / f"{name}.j2"
        if not res.is_file():
            raise PromptError(
                f"unknown prompt template {name!r}; "
                f"shipped templates: {', '.join(template_names())}"
            )
        source = res.read_text(encoding="utf-8")
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"template {name!r} line {exc.lineno}: {exc.message}") from exc
    return PromptTemplate(name, source, frozenset(meta.find_undeclared_variables(ast)))


def load_template(name: str, *, allowed: Iterable[str] | None = None) -> PromptTemplate:
    """Load (cached) and validate a template by shipped name or file path.

    ``allowed`` is the set of variables the caller will pass; a template referring to any other
    variable is rejected here, at load time.
    """
    tpl = _load(name)
    if allowed is not None:
        unknown = tpl.variables - set(allowed)
        if unknown:
            raise PromptError(
                f"template {name!r} uses undefined variable(s) {', '.join(sorted(unknown))}; "
                f"available: {', '.join(sorted(allowed))}"
            )
    return tpl


def template_hash(name: str) -> str:
    """A template's identity in behaviour manifests and the judges' reasoner checks: the first 16
    hex digits of the sha256 of its source."""
    return hashlib.sha256(load_template(name).source.encode()).hexdigest()[:16]
