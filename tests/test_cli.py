"""The service over a real HTTP socket, as `graphql-api serve` runs it (each command's own
successes and failures: tests/test_commands.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.testing import cli, new_token, serving

HTTP_AUDIT = Path(__file__).parent / "http_audit"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}",
        "GRAPHQL_API_DEV_MODE": "false",
    }


def make_run_environment(repo_root: Path) -> dict[str, str]:
    """The variables `make run` serves with: those of its last command, `make -n` shows."""
    shown = subprocess.run(
        ["make", "-s", "-n", "run"], cwd=repo_root, capture_output=True, text=True, check=True
    )
    serve = shlex.split(shown.stdout.splitlines()[-1])
    assert serve[-2:] == [".venv/bin/graphql-api", "serve"], serve
    return dict(word.split("=", 1) for word in serve[:-2])


def outbox_depth(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    return next(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "graphql_api_outbox_depth"
    )


def test_make_run_logs_the_demos_mail_instead_of_sending_it(env: dict[str, str], repo_root: Path):
    assert cli(env, "migrate").returncode == 0
    assert cli(env, "seed", "--demo").returncode == 0
    with serving({**env, **make_run_environment(repo_root)}) as (url, process):
        for _ in range(100):
            if outbox_depth(url) == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the demo's deliveries were not made")
    assert process.stderr is not None
    log = process.stderr.read()
    caught = [line for line in log.splitlines() if "E-mail caught, not sent: to " in line]
    assert caught and all("subject '" in line for line in caught), log
    assert "failed" not in log, "nothing tried port 25"


def test_serve_logs_one_json_object_a_line(env: dict[str, str]):
    assert cli(env, "migrate").returncode == 0
    token = new_token(env)
    with serving({**env, "GRAPHQL_API_LOG_FORMAT": "json"}) as (url, process):
        answered = httpx.post(
            f"{url}/graphql",
            json={"query": "query Viewer { viewer { name } }"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-1"},
            timeout=10,
        )
        assert answered.headers["x-request-id"] == "e2e-1"
    assert process.stderr is not None
    lines = [json.loads(line) for line in process.stderr.read().splitlines()]
    [request] = [line for line in lines if line.get("request_id") == "e2e-1"]
    assert request["message"] == "POST /graphql 200"
    assert (request["operation"], request["outcome"], request["principal"]) == (
        "Viewer",
        "ok",
        "Test",
    )
    assert request["statements"] >= 2, "the token check and the user"
    assert request["duration_ms"] > 0
    assert any(line["logger"].startswith("uvicorn") for line in lines), "uvicorn's too"


def test_serve_over_http_requires_a_token(server: tuple[str, str]):
    url, token = server
    query = {
        "query": "{ groups(filter: {closed: false}) { totalCount edges { node { name memberCount } } } }"
    }
    assert httpx.post(f"{url}/graphql", json=query, timeout=10).status_code == 401
    response = httpx.post(
        f"{url}/graphql", json=query, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    groups = response.json()["data"]["groups"]
    assert groups["totalCount"] == 6, "the demo has one closed group of seven"
    assert all(edge["node"]["memberCount"] > 0 for edge in groups["edges"])


@pytest.fixture(scope="session")
def http_audit() -> Path:
    """graphql-http's audit (tests/http_audit), installed from its lockfile when it is not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the GraphQL-over-HTTP audit needs node and npm, which are not installed")
    installed = HTTP_AUDIT / "node_modules" / ".package-lock.json"
    locked = HTTP_AUDIT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < locked.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HTTP_AUDIT,
            capture_output=True,
            check=True,
            timeout=300,
        )
    return HTTP_AUDIT


def test_the_graphql_over_http_audit_passes(server: tuple[str, str], http_audit: Path):
    url, token = server
    audited = subprocess.run(
        ["node", "audit.mjs", f"{url}/graphql"],
        cwd=http_audit,
        env={**os.environ, "GRAPHQL_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(audited.stdout)
    failed = [r for r in results if r["status"] != "ok"]
    assert failed == [], "MUST fails are errors, SHOULD fails warnings; MAY audits never fail"
    assert Counter(r["name"].split()[0] for r in results) == {"MUST": 13, "SHOULD": 23, "MAY": 25}


async def graphql_over_websocket(
    url: str,
    init: dict[str, Any],
    document: str | dict[str, Any],
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every message the server sends for one operation over graphql-transport-ws (a
    document, or a whole ``subscribe`` payload), the connection's close included as
    ``{"type": "closed", "code": ...}``."""
    payload = {"query": document} if isinstance(document, str) else document
    received: list[dict[str, Any]] = []
    async with websockets.connect(
        url.replace("http", "ws") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
    ) as socket:
        try:
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            received.append(json.loads(await socket.recv()))
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:
                message = json.loads(await socket.recv())
                received.append(message)
                if message["type"] in ("complete", "error"):
                    return received
        except websockets.ConnectionClosed as closed:
            received.append({"type": "closed", "code": closed.rcvd.code if closed.rcvd else None})
            return received


async def test_a_websocket_client_authenticates_in_connection_init(server: tuple[str, str]):
    url, token = server
    me = "{ me { user { name } permissions } }"
    answered = await graphql_over_websocket(url, {"Authorization": f"Bearer {token}"}, me)
    assert [m["type"] for m in answered] == ["connection_ack", "next", "complete"]
    assert answered[1]["payload"]["data"]["me"]["user"] == {"name": "Test"}
    assert "groups.manage" in answered[1]["payload"]["data"]["me"]["permissions"]

    by_header = await graphql_over_websocket(
        url, {}, me, headers={"Authorization": f"Bearer {token}"}
    )
    assert [m["type"] for m in by_header] == ["connection_ack", "next", "complete"]

    for init in ({}, {"Authorization": "Bearer gapi_wrong"}, {"Authorization": token}):
        refused = await graphql_over_websocket(url, init, me)
        assert refused == [{"type": "closed", "code": 4403}], init


async def test_a_websocket_operation_meets_the_same_permissions(
    server: tuple[str, str], server_env: dict[str, str]
):
    url, _ = server
    made = cli(
        server_env,
        "create-user",
        "--name",
        "Kijker",
        "--email",
        "k@example.coop",
        "--role",
        "viewer",
    )
    viewer = made.stdout.split()[-1]
    create = 'mutation { createGroup(input: {name: "Via WS"}) { errors { code message } } }'
    answered = await graphql_over_websocket(url, {"Authorization": f"Bearer {viewer}"}, create)
    [error] = answered[1]["payload"]["data"]["createGroup"]["errors"]
    assert error["code"] == "FORBIDDEN" and "groups.manage" in error["message"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ROLES = "{ roles { key } }"


async def test_serve_runs_only_trusted_documents_when_told(env: dict[str, str], tmp_path: Path):
    # As GraphQL Code Generator's client preset writes persisted-documents.json.
    roles = "query Roles($locale: String) {\n  roles {\n    key\n    label(locale: $locale)\n  }\n}"
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({sha256(roles): roles}, indent=2))
    env = {
        **env,
        "GRAPHQL_API_TRUSTED_DOCUMENTS": str(manifest),
        "GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY": "true",
    }
    assert cli(env, "migrate").returncode == 0
    token = new_token(env)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/graphql-response+json"}
    parameters = {"documentId": f"sha256:{sha256(roles)}", "variables": {"locale": "en"}}
    with serving(env) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            posted = await http.post("/graphql", json=parameters)
            variables = json.dumps(parameters["variables"])
            got = await http.get("/graphql", params={**parameters, "variables": variables})
            ad_hoc = await http.post("/graphql", json={"query": ROLES})
        init = {"Authorization": f"Bearer {token}"}
        over_websocket = await graphql_over_websocket(url, init, parameters)
        ad_hoc_over_websocket = await graphql_over_websocket(url, init, ROLES)
    assert posted.status_code == 200 and posted.json() == got.json()
    assert [m["type"] for m in over_websocket] == ["connection_ack", "next", "complete"]
    assert over_websocket[1]["payload"] == posted.json()
    assert [m["type"] for m in ad_hoc_over_websocket] == ["connection_ack", "error"]
    refusal = ad_hoc_over_websocket[1]
    assert [e["extensions"]["code"] for e in refusal["payload"]] == ["DOCUMENT_NOT_TRUSTED"]
    assert {"key": "coach", "label": "Is coach"} in posted.json()["data"]["roles"]
    assert ad_hoc.status_code == 400
    assert ad_hoc.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
