"""CPU time per request of the peer questions, through the whole ASGI application in one
process, without HTTP: how each lever in bench/README.md was weighed on its own.

A whole peer run moves by ±10 % from one run to the next on a shared 2-core machine;
CPU time per request (``time.process_time()``), the smallest of several repetitions,
moves far less. It is a measure of this process's work only: the HTTP server's, wrk's
and PostgreSQL's are in ``make bench-peer``.

    python bench/peer/cpu.py                       # every question, compiled reads on
    GRAPHQL_API_COMPILED_READS=off python bench/peer/cpu.py --only name
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peer.run import prepare, questions
from bench.run import database_url
from graphql_api.kernel.access import SYSTEM
from graphql_api.settings import Settings
from graphql_api.users.models import User
from graphql_api.users.tokens import issue_token
from graphql_api.web.app import create_app


async def main(only: str | None, requests: int, repetitions: int) -> None:
    url = database_url("postgresql", "M")
    sample, _ = await prepare(url)
    app = create_app(Settings(database_url=url, dev_mode=False))
    async with app.state.sessions() as session, session.begin():
        user = await session.get(User, 1)
        _, token = await issue_token(session, SYSTEM, user, name="bench/peer/cpu")
    async with app.router.lifespan_context(app):
        for question in questions(sample):
            if only and only not in question.name:
                continue
            call = _caller(app, question.ours.body().encode(), token)
            for _ in range(50):  # planned, the token checked and kept
                await call()
            best = min([await _cpu_per_call(call, requests) for _ in range(repetitions)])
            print(f"{question.name}: {best * 1000:.3f} ms CPU per request")


def _caller(app: Any, body: bytes, token: str) -> Any:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
    }

    async def call() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client stays until the answer is sent
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        if sent[0]["status"] != 200 or b'"errors"' in sent[1]["body"]:
            raise SystemExit(f"{sent[0]['status']}: {json.loads(sent[1]['body'])}")

    return call


async def _cpu_per_call(call: Any, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await call()
    return (time.process_time() - started) / requests


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the questions whose name contains this text")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.only, args.requests, args.repetitions))
