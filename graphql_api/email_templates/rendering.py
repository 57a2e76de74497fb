"""Rendering e-mail templates in Jinja2's sandbox, within a budget, off the event loop.

Merge fields are plain values (``contact.*``, ``group.*``, ``group.responsible.*``), never
live objects, and the sandbox refuses attributes such as ``__class__``. A template that
does not compile, reaches for anything unsafe, or needs more than its budget is refused
when it is saved; sending renders with the same budget.

The budget of one rendering: ``MAX_STEPS`` loop iterations, calls and filters together,
``range`` of at most ``MAX_RANGE`` numbers, ``MAX_OUTPUT`` characters of output (and of
any text or list the template builds on the way), and ``MAX_SECONDS``. Every loop is
metered (the parsed template is rewritten so each loop's items pass a counting filter),
so is every call and filter, and the operators that can grow a value are checked before
they run. Rendering runs in a worker thread, so a costly template never blocks requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    nodes,
    pass_context,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

MAX_STEPS = 10_000
"""Loop iterations, calls and filters one rendering may run, together."""
MAX_RANGE = 1_000
"""The most numbers ``range`` gives."""
MAX_OUTPUT = 200_000
"""The most characters a rendering writes, and the longest text or list it builds."""
MAX_WORK = 10_000_000
"""How much a filter may be asked to build: the product of its two largest inputs (text
lengths, list sizes, numbers such as a width); ``replace`` and ``center`` could otherwise
build gigabytes in one step."""
MAX_SECONDS = 2.0
"""The longest one rendering may take, checked at every step and by the caller."""
MAX_NUMBER_BITS = 4_096
"""The largest number ``**`` or ``*`` may make (about 1,200 digits)."""

COUNTED = "metered_loop"
SIZED = "metered_text"
"""Filters the rewritten template calls: names a template may use too, harmlessly."""

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


class TemplateTooCostly(TemplateProblem):
    """The template needs more than a rendering's budget; says which limit."""


class _Budget:
    """What one rendering has left to spend."""

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise TemplateTooCostly(
                f"it runs more than {MAX_STEPS:,} loop steps, calls and filters"
            )
        if time.monotonic() > self.deadline:
            raise TemplateTooCostly(f"it takes longer than {MAX_SECONDS:g} seconds to render")


_BUDGET: ContextVar[_Budget] = ContextVar("template_budget")


def _spend(steps: int = 1) -> None:
    _BUDGET.get().spend(steps)


def _size(value: Any) -> int:
    """How big a value is for the budget: its length, or an integer's magnitude."""
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return min(abs(value), MAX_WORK + 1)
    return 1


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_OUTPUT:
        raise TemplateTooCostly(f"it builds a text or list longer than {MAX_OUTPUT:,}")
    return value


@pass_context
def _metered_loop(_context: Any, items: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each one a step of the budget."""
    for item in items:
        _spend()
        yield item


@pass_context
def _metered_text(_context: Any, value: Any) -> Any:
    return _sized(value)


def _range(*arguments: int) -> range:
    numbers = range(*arguments)
    if len(numbers) > MAX_RANGE:
        raise TemplateTooCostly(f"range gives at most {MAX_RANGE:,} numbers")
    return numbers


def _bounded(jinja_filter: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter, spending a step, refused when its inputs could build too much,
    and its result checked."""

    @wraps(jinja_filter)  # keeps what Jinja reads from it (pass_context and the like)
    def bounded(*arguments: Any, **options: Any) -> Any:
        _spend()
        # The value filtered is the first input that is no context; a number there is a
        # value (a file size to format), a number after it a size (a width, a count).
        # (Jinja's contexts are the only arguments with an environment.)
        inputs = [a for a in arguments if not hasattr(a, "environment")]
        sizes = sorted(
            [_size(inputs[0]) if inputs and not _number(inputs[0]) else 1]
            + [_size(v) for v in (*inputs[1:], *options.values())],
            reverse=True,
        )
        if sizes[0] * (sizes[1] if len(sizes) > 1 else 1) > MAX_WORK:
            raise TemplateTooCostly(f"the filter {jinja_filter.__name__} would build too much")
        return _sized(jinja_filter(*arguments, **options))

    return bounded


class _Metered(NodeTransformer):
    """Rewrites a parsed template: every loop's items pass ``metered_loop``, every ``~``
    concatenation passes ``metered_text``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, COUNTED, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, SIZED, [], [], None, None, lineno=node.lineno)


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with every loop, call, filter and growing operator
    metered against the budget of the rendering (``_BUDGET``)."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=autoescape)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}
        self.filters[COUNTED] = _metered_loop
        self.filters[SIZED] = _metered_text
        self.globals["range"] = _range

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Metered().visit(super()._parse(source, name, filename))

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator in ("*", "**") and _number(left) and _number(right):
            exponent = right if operator == "**" else 1
            bits = left.bit_length() * max(exponent, 0) + (
                right.bit_length() if operator == "*" else 0
            )
            if bits > MAX_NUMBER_BITS:
                raise TemplateTooCostly(f"it makes a number larger than {MAX_NUMBER_BITS} bits")
        elif operator == "*" and _number(right) != _number(left):
            count, sized = (right, left) if _number(right) else (left, right)
            if _size(sized) * max(count, 0) > MAX_OUTPUT:
                raise TemplateTooCostly(f"it builds a text or list longer than {MAX_OUTPUT:,}")
        elif operator == "+" and not _number(left) and _size(left) + _size(right) > MAX_OUTPUT:
            raise TemplateTooCostly(f"it builds a text or list longer than {MAX_OUTPUT:,}")
        return _sized(super().call_binop(context, operator, left, right))


ENVIRONMENT = BudgetedSandbox(autoescape=False)
HTML = BudgetedSandbox(autoescape=True)


async def check(source: str, fields: Mapping[str, Any] = SAMPLE) -> TemplateProblem | None:
    """Why ``source`` cannot be rendered with the merge fields (``fields``: an example of
    each), as text or as HTML, within the budget; None when it can."""
    try:
        await _off_the_loop(lambda: [_render(env, source, fields) for env in (ENVIRONMENT, HTML)])
    except TemplateProblem as problem:
        return problem
    return None


async def render(subject: str, body: str, fields: Mapping[str, Any]) -> Rendered:
    """Subject and body as text, and the body as HTML (values escaped, lines kept), each
    within the budget and off the event loop."""
    return await _off_the_loop(lambda: _rendered(subject, body, fields))


async def render_many(
    subject: str, body: str, recipients: Sequence[Mapping[str, Any]]
) -> list[Rendered | TemplateProblem]:
    """``render`` for each recipient's fields, in one trip to a worker thread: a batch of
    a thousand mails pays for one hop, not a thousand. Each rendering has its own budget;
    one that fails answers its problem in its place, and the rest are rendered still."""

    def each() -> list[Rendered | TemplateProblem]:
        done: list[Rendered | TemplateProblem] = []
        for fields in recipients:
            try:
                done.append(_rendered(subject, body, fields))
            except TemplateProblem as problem:
                done.append(problem)
        return done

    return await _off_the_loop(each, len(recipients))


def _rendered(subject: str, body: str, fields: Mapping[str, Any]) -> Rendered:
    html = _render(HTML, body, fields).replace("\n", "<br>\n")
    return Rendered(
        subject=" ".join(_render(ENVIRONMENT, subject, fields).split()),
        text=_render(ENVIRONMENT, body, fields),
        html=f"<!doctype html><html><body>{html}</body></html>",
    )


async def _off_the_loop(work: Callable[[], Any], renderings: int = 1) -> Any:
    """``work`` (``renderings`` of them) in a worker thread; each stops itself at its
    deadline, and the caller stops waiting a moment after the last one's in any case."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(work), MAX_SECONDS * (renderings + 1))
    except TimeoutError as error:
        raise TemplateTooCostly(
            f"it takes longer than {MAX_SECONDS:g} seconds to render"
        ) from error


@lru_cache(maxsize=256)
def _compiled(environment: BudgetedSandbox, source: str) -> Template:
    """A template compiled once: a mail to a thousand new members renders one template a
    thousand times, and compiling costs forty times what rendering does."""
    return environment.from_string(source)


def _render(environment: BudgetedSandbox, source: str, fields: Mapping[str, Any]) -> str:
    """Compile and render ``source`` with a fresh budget, the output counted as it comes."""
    _BUDGET.set(_Budget())
    try:
        written = 0
        parts = []
        for part in _compiled(environment, source).generate(**fields):
            written += len(part)
            if written > MAX_OUTPUT:
                raise TemplateTooCostly(f"it writes more than {MAX_OUTPUT:,} characters")
            parts.append(part)
        return "".join(parts)
    except TemplateProblem:
        raise
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"line {error.lineno}: {error.message}") from error
    except SecurityError as error:
        raise TemplateProblem(f"not allowed: {error}") from error
    except TemplateError as error:
        raise TemplateProblem(str(error)) from error
    except (RecursionError, MemoryError) as error:
        raise TemplateTooCostly("it nests or builds too much to render") from error
    except Exception as error:
        # The template's own doing (1/0, int('x')): its words, never the server's.
        raise TemplateProblem(f"{type(error).__name__}: {error}"[:300]) from error
