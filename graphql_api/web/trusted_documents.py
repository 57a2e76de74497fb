"""Trusted documents (persisted operations): the GraphQL documents a frontend shipped, by
id, from a manifest read once at start-up (docs/http.md, "Trusted documents"). A request
names one by ``documentId`` instead of sending a ``query``; when only trusted documents
may run, no other document reaches the parser.

The manifest is the JSON object Relay's compiler (``persistConfig.file``) and GraphQL Code
Generator's client preset (``persisted-documents.json``) write: document id to document
text. It is checked whole before the service starts, so a request never meets a broken
one."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from graphql import GraphQLSyntaxError, parse

from graphql_api.graphql_base.errors import (
    AMBIGUOUS_DOCUMENT,
    DOCUMENT_NOT_TRUSTED,
    UNKNOWN_DOCUMENT,
)
from graphql_api.settings import Settings

SHA256_PREFIX = "sha256:"
"""How the GraphQL-over-HTTP specification marks an id that is the SHA-256 of the text;
clients may send it or leave it off, and a manifest may hold ids either way."""
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ManifestError(Exception):
    """A manifest the service cannot use, in one line naming the file and the id at fault."""


class DocumentRefused(Exception):
    """A request's document that may not run: the code and message its client gets."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TrustedDocuments:
    """The documents of one manifest by id, and whether they are the only ones that run."""

    def __init__(self, documents: Mapping[str, str], *, only: bool = False) -> None:
        self._by_id = {_unprefixed(document_id): text for document_id, text in documents.items()}
        self._texts = frozenset(documents.values())
        self.only = only

    def document(self, query: str | None, document_id: str | None) -> str | None:
        """The text to run for a request's ``query`` and ``documentId`` (None when it sent
        neither); ``DocumentRefused`` when it sends both, names an unknown id, or, when
        only trusted documents run, sends a ``query`` that is not exactly one of them.
        Any transport can ask: HTTP now, a WebSocket's ``subscribe`` message too."""
        if document_id is None:
            if self.only and query is not None and query not in self._texts:
                raise DocumentRefused(
                    DOCUMENT_NOT_TRUSTED,
                    "Only trusted documents run here: send the documentId of one instead "
                    "of a query.",
                )
            return query
        if query is not None:
            raise DocumentRefused(
                AMBIGUOUS_DOCUMENT, "Send either a query or a documentId, not both."
            )
        text = self._by_id.get(_unprefixed(document_id))
        if text is None:
            raise DocumentRefused(UNKNOWN_DOCUMENT, "No trusted document has this documentId.")
        return text


def load_trusted_documents(settings: Settings) -> TrustedDocuments:
    """The trusted documents ``GRAPHQL_API_TRUSTED_DOCUMENTS`` names, or none when it is
    unset; ``ManifestError`` when the manifest cannot be used."""
    if settings.trusted_documents is None:
        return TrustedDocuments({})
    return TrustedDocuments(
        read_manifest(settings.trusted_documents), only=settings.trusted_documents_only
    )


def read_manifest(path: Path) -> dict[str, str]:
    """The documents of the manifest at ``path``, each checked to parse and, when its id is
    a SHA-256 hash, to have it; ``ManifestError`` at the first that does not."""
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ManifestError(f"{path} is no JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} is no JSON object of document ids to documents")
    for document_id, text in manifest.items():
        problem = _problem(document_id, text)
        if problem:
            raise ManifestError(f"document {document_id!r} of {path} {problem}")
    return manifest


def _problem(document_id: str, text: object) -> str | None:
    if not isinstance(text, str):
        return "is no string"
    try:
        parse(text)
    except GraphQLSyntaxError as error:
        where = "".join(f" at line {at.line}, column {at.column}" for at in error.locations or [])
        return f"does not parse{where}: {error.message.rstrip('.')}"
    digest = _unprefixed(document_id)
    if SHA256_HEX.fullmatch(digest) and hashlib.sha256(text.encode()).hexdigest() != digest:
        return "does not match its id: its text has another SHA-256"
    return None


def _unprefixed(document_id: str) -> str:
    return document_id.removeprefix(SHA256_PREFIX)
