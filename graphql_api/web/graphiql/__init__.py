"""GraphiQL, served entirely from this package: the page of ``/graphql`` and
``/portal/graphql``, and its files under ``/static/graphiql``.

The page loads nothing from another origin (the pinned builds of GraphiQL and React are in
``static/``, rebuilt by ``make graphiql-assets``), runs no inline script, and says so in its
Content-Security-Policy, so it works offline and behind a strict proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

ASSETS = Path(__file__).parent / "static"
STATIC_PATH = "/static/graphiql"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # GraphiQL's stylesheet embeds its fonts (Roboto, Fira Code) and the editor's lint
        # icons as data: URLs; nothing else may come from anywhere but this origin.
        "img-src 'self' data:",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
FOREVER = "public, max-age=31536000, immutable"
"""A file asked for by the digest the page links it with never changes under that URL."""


@dataclass(frozen=True)
class Example:
    """A tab GraphiQL opens with (its ``defaultTabs``): a document and its variables."""

    query: str
    variables: dict[str, Any] | None = None

    def as_tab(self) -> dict[str, str]:
        tab = {"query": self.query}
        if self.variables is not None:
            tab["variables"] = json.dumps(self.variables, indent=2)
        return tab


class GraphiQLPage:
    """One endpoint's GraphiQL page, rendered once: its title and example tabs."""

    def __init__(self, title: str, examples: Sequence[Example]) -> None:
        template = _templates().get_template("page.html")
        self.html = template.render(
            title=title,
            asset=asset_url,
            config={"tabs": [example.as_tab() for example in examples]},
        )

    def response(self) -> Response:
        return HTMLResponse(
            self.html,
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
            },
        )


class ServesGraphiQL:
    """Mixin of a Strawberry view (before it in the bases): its GraphiQL page is
    ``graphiql``, served from here, instead of Strawberry's, which loads GraphiQL from a
    public CDN."""

    graphiql: GraphiQLPage

    async def render_graphql_ide(self, request: Any) -> Response:
        return self.graphiql.response()


class Assets(StaticFiles):
    """GraphiQL's files, to anyone (they hold no data): cached for good when asked for by
    their digest, revalidated (ETag) otherwise."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(full_path).name
        asked = scope.get("query_string", b"").decode("latin-1")
        fresh = asked == f"v={digests().get(name)}"
        response.headers["Cache-Control"] = FOREVER if fresh else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def assets_route() -> Mount:
    """The route of GraphiQL's files."""
    return Mount(STATIC_PATH, app=Assets(directory=ASSETS))


def asset_url(name: str) -> str:
    """Where the page loads ``name`` from: its path with the digest of its content."""
    return f"{STATIC_PATH}/{name}?v={digests()[name]}"


@cache
def digests() -> dict[str, str]:
    """The first 16 hex digits of each file's SHA-256; read once, as the files ship."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in ASSETS.iterdir()
        if path.is_file()
    }


@cache
def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True)
