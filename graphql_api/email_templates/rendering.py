"""Rendering e-mail templates in Jinja2's sandbox: template text never reaches Python.

Merge fields are plain values (``contact.*``, ``group.*``, ``group.responsible.*``), never
live objects, and the sandbox refuses attributes such as ``__class__``. A template that
does not compile, or that reaches for anything unsafe, is refused when it is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
HTML = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)

SAMPLE = {
    "contact": {
        "firstName": "Anna",
        "lastName": "de Vries",
        "displayName": "Anna de Vries",
        "organisationName": None,
        "email": "anna@example.nl",
        "phone": None,
        "street": "Dorpsstraat 1",
        "postalCode": "8011 AB",
        "city": "Zwolle",
    },
    "group": {
        "name": "Nieuwsbrief",
        "description": None,
        "responsible": {"name": "Johannes Frölich", "email": "johannes@example.coop"},
    },
}
"""Every merge field, for checking a template when it is saved."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class TemplateProblem(ValueError):
    """Why a template cannot be used, with the line when there is one."""


def check(source: str) -> str | None:
    """Why ``source`` cannot be rendered with the merge fields, or None when it can."""
    try:
        render_text(source, SAMPLE)
    except TemplateProblem as problem:
        return str(problem)
    return None


def render_text(source: str, fields: Mapping[str, Any]) -> str:
    return _render(ENVIRONMENT, source, fields)


def render(subject: str, body: str, fields: Mapping[str, Any]) -> Rendered:
    """Subject and body as text, and the body as HTML (values escaped, lines kept)."""
    html = _render(HTML, body, fields).replace("\n", "<br>\n")
    return Rendered(
        subject=" ".join(render_text(subject, fields).split()),
        text=render_text(body, fields),
        html=f"<!doctype html><html><body>{html}</body></html>",
    )


def _render(
    environment: ImmutableSandboxedEnvironment, source: str, fields: Mapping[str, Any]
) -> str:
    try:
        return environment.from_string(source).render(**fields)
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"line {error.lineno}: {error.message}") from error
    except SecurityError as error:
        raise TemplateProblem(f"not allowed: {error}") from error
    except TemplateError as error:
        raise TemplateProblem(str(error)) from error
