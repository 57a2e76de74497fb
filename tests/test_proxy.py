"""deploy/nginx/graphql-api.conf in use: Debian's nginx, from the shipped site (only its
upstreams, addresses, certificate and internal networks replaced: tests/nginx_site.py),
terminates TLS in front of two `graphql-api serve` on one database, and the clients come
from distinct loopback addresses (Linux routes all of 127.0.0.0/8), as from distinct
machines. The systemd units of deploy/systemd/ are checked by systemd-analyze, and the
environment file by the settings that read it. Skipped without nginx or systemd-analyze,
except in CI (CI=true), where that fails: CI installs both (apt-get install nginx systemd)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from graphql_api.kernel.db import create_engine
from graphql_api.testing import (
    GraphQLClient,
    debian_program,
    empty_tables,
    free_port,
    new_group_id,
    new_token,
    serving,
)
from graphql_api.testing.certificates import Certificates, make_certificates
from tests.nginx_site import (
    nginx_binary,
    render_site,
    running_nginx,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy" / "graphql-api.env.example"
UNITS = ROOT / "deploy" / "systemd"
PROGRAM = "/opt/graphql-api/bin/graphql-api"
"""Where the units run graphql-api from: the virtual environment of docs/deployment.md."""
PROXY = "127.0.0.1"
"""The address nginx connects to the API hosts from: their GRAPHQL_API_FORWARDED_ALLOW_IPS."""
INSIDE = "127.0.0.8"
"""A client on the internal network, allowed /health and /metrics."""
MAX_BODY = 1_048_576
"""GRAPHQL_API_MAX_BODY_BYTES's default, which the site's client_max_body_size matches."""
LOGIN = (
    "mutation($e: String!, $p: String!) { portalLogin(email: $e, password: $p) "
    "{ sessionToken errors { code } } }"
)


@dataclass
class Upstream:
    """A `graphql-api serve` behind the proxy, and its log."""

    url: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    async def logged(self, *texts: str, within: float = 5.0) -> set[str]:
        """Which of ``texts`` (request ids) the log has, waiting up to ``within`` seconds
        for the first of them: a request's line is written once it is answered."""
        deadline = time.monotonic() + within
        while True:
            log = self.log.read_text()
            found = {text for text in texts if text in log}
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)


@dataclass
class Proxy:
    """nginx on ``url`` (HTTPS) in front of ``upstreams``; ``tls`` trusts its certificate."""

    url: str
    upstreams: list[Upstream]
    tls: ssl.SSLContext

    def client(self, address: str) -> httpx.AsyncClient:
        """A client whose connections come from ``address`` (a loopback address)."""
        transport = httpx.AsyncHTTPTransport(local_address=address, verify=self.tls)
        return httpx.AsyncClient(transport=transport, base_url=self.url, timeout=20)


@contextlib.contextmanager
def upstreams(folder: Path, *envs: Mapping[str, str]) -> Iterator[list[Upstream]]:
    """A `graphql-api serve` per environment, started side by side, until the block ends."""
    with contextlib.ExitStack() as stack:
        logs = [
            stack.enter_context((folder / f"serve-{uuid.uuid4().hex[:8]}.log").open("w"))
            for _ in envs
        ]
        managers = [serving(env, log=log) for env, log in zip(envs, logs, strict=True)]
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
        started = [future.result() for future in futures]  # raises when one did not start
        yield [
            Upstream(url, process, Path(log.name))
            for (url, process), log in zip(started, logs, strict=True)
        ]


@contextlib.contextmanager
def proxy(
    folder: Path,
    certificates: Certificates,
    behind: list[Upstream],
    proxy_bind: str | None = None,
    **rendered: Any,
) -> Iterator[Proxy]:
    """nginx from the shipped site in front of ``behind``, in a folder of its own,
    connecting to them from ``proxy_bind`` (by default the kernel's choice, 127.0.0.1)."""
    nginx_folder = folder / f"nginx-{uuid.uuid4().hex[:8]}"
    nginx_folder.mkdir()
    listen = f"127.0.0.1:{free_port()}"
    site = render_site(
        upstreams=[upstream.address for upstream in behind],
        listen=listen,
        certificate=certificates.certificate,
        key=certificates.key,
        internal=[INSIDE],
        **rendered,
    )
    with running_nginx(site, nginx_folder, proxy_bind):
        tls = ssl.create_default_context(cafile=str(certificates.ca))
        yield Proxy(f"https://{listen}", behind, tls)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nginx_binary()  # before any server starts: skipped (or failed in CI) without nginx
    return tmp_path_factory.mktemp("proxy")


@pytest.fixture(scope="module")
def certificates(folder: Path) -> Certificates:
    return make_certificates(folder)


@pytest.fixture(scope="module")
async def emptied_after(database_url: str) -> AsyncIterator[None]:
    """The tables emptied after this module, for the modules after it."""
    yield
    engine = create_engine(database_url)
    await empty_tables(engine)
    await engine.dispose()


@dataclass
class Servers:
    """The API hosts of this module, on one database."""

    behind: list[Upstream]
    """Two, trusting the proxy's X-Forwarded-For: the site's upstreams."""
    spare: Upstream
    """One more, stopped by the test of a host going away."""
    token: str
    """A manager's API token."""


@pytest.fixture(scope="module")
def servers(server_env: dict[str, str], folder: Path, emptied_after: None) -> Iterator[Servers]:
    token = new_token(server_env)
    env = {
        **server_env,
        "GRAPHQL_API_FORWARDED_ALLOW_IPS": PROXY,
        # Subscribers see another process's commits within this on SQLite.
        "GRAPHQL_API_FEED_POLL_SECONDS": "0.2",
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
    }
    with upstreams(folder, env, env, env) as (first, second, spare):
        yield Servers([first, second], spare, token)


@pytest.fixture(scope="module")
def site(folder: Path, certificates: Certificates, servers: Servers) -> Iterator[Proxy]:
    """nginx in front of the two API hosts."""
    with proxy(folder, certificates, servers.behind) as running:
        yield running


async def login_refusal(http: httpx.AsyncClient, email: str, **headers: str) -> str:
    """The code of a failed portal login of ``email`` (always a wrong password)."""
    answer = await http.post(
        "/portal/graphql",
        json={"query": LOGIN, "variables": {"e": email, "p": "niet-het-wachtwoord"}},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    login = answer.json()["data"]["portalLogin"]
    assert login["sessionToken"] is None, login
    [error] = login["errors"]
    return error["code"]


async def lock_out(http: httpx.AsyncClient, email: str) -> None:
    """Six failed logins from ``http``'s address: the next one from there must wait two
    seconds (five are free, then 1 s, then 2 s: docs/portal.md), time enough to look."""
    for _ in range(5):
        assert await login_refusal(http, email) == "INVALID_CREDENTIALS"
    await asyncio.sleep(1.1)
    assert await login_refusal(http, email) == "INVALID_CREDENTIALS"


async def test_queries_go_over_https_to_both_api_hosts(site: Proxy, servers: Servers):
    ids = [f"both-{n}-{uuid.uuid4().hex[:8]}" for n in range(4)]
    async with site.client("127.0.0.2") as http:
        for request_id in ids:
            answer = await http.post(
                "/graphql",
                json={"query": "{ groups { totalCount } }"},
                headers={"Authorization": f"Bearer {servers.token}", "X-Request-ID": request_id},
            )
            assert answer.status_code == 200, answer.text
            assert "totalCount" in answer.json()["data"]["groups"]
            assert answer.headers["X-Request-ID"] == request_id
    for upstream in site.upstreams:
        assert await upstream.logged(*ids), f"{upstream.url} answered none of {ids}"


async def test_every_answer_carries_the_security_headers(site: Proxy, servers: Servers):
    async with site.client("127.0.0.2") as http:
        answers = [
            await http.post("/graphql", json={"query": "{ __typename }"}),
            await http.get("/graphql", headers={"Accept": "text/html"}),  # GraphiQL
            await http.get("/metrics"),  # nginx's own 403
        ]
    assert [answer.status_code for answer in answers] == [401, 200, 403]
    for answer in answers:
        assert answer.headers["Strict-Transport-Security"] == "max-age=63072000"
        assert answer.headers.get_list("X-Content-Type-Options") == ["nosniff"]
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    graphiql = answers[1]
    assert "<html" in graphiql.text.lower()
    # The page's own policy, alone: nginx adds none that would be enforced beside it.
    [policy] = graphiql.headers.get_list("Content-Security-Policy")
    assert "frame-ancestors 'none'" in policy


async def test_plain_http_is_redirected_to_https(
    folder: Path, certificates: Certificates, servers: Servers
):
    plain = f"127.0.0.1:{free_port()}"
    with proxy(folder, certificates, servers.behind, redirect_listen=plain):
        async with httpx.AsyncClient(base_url=f"http://{plain}") as http:
            answer = await http.get("/graphql?query=%7B__typename%7D")
    assert answer.status_code == 301
    assert answer.headers["Location"] == "https://127.0.0.1/graphql?query=%7B__typename%7D"


async def test_a_subscription_runs_over_the_proxy(site: Proxy, servers: Servers):
    """The WebSocket is upgraded through nginx; the group is created over HTTPS, maybe by
    the other API host, and the subscriber hears of it all the same."""
    async with websockets.connect(
        site.url.replace("https", "wss") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        ssl=site.tls,
    ) as socket:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {servers.token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "connection_ack"
        query = "subscription { groupChanged { kind name } }"
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        await asyncio.sleep(0.5)  # the subscription runs
        async with site.client("127.0.0.2") as http:
            await new_group_id(GraphQLClient(http, servers.token), name="Via de proxy")
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert message["type"] == "next", message
    assert message["payload"]["data"]["groupChanged"] == {
        "kind": "CREATED",
        "name": "Via de proxy",
    }


async def test_each_client_address_has_its_own_login_throttle(site: Proxy):
    """A lockout stays with the address that earned it: another client is not locked
    out, and the locked-out client cannot name another address in X-Forwarded-For to
    escape it, nor can another client name the locked-out address to be taken for it,
    not even one on the proxy's own machine, whose address the API hosts trust."""
    async with (
        site.client("127.0.0.2") as locked,
        site.client("127.0.0.3") as other,
        site.client("127.0.0.4") as spoofer,
        site.client(PROXY) as neighbour,
    ):
        await lock_out(locked, "onbekend-1@example.coop")
        # Each try names a new e-mail address: only the client's address counts here.
        assert await login_refusal(locked, "onbekend-2@example.coop") == "TOO_MANY_ATTEMPTS"
        escape = {"X-Forwarded-For": "127.0.0.99"}
        assert (
            await login_refusal(locked, "onbekend-3@example.coop", **escape) == "TOO_MANY_ATTEMPTS"
        )
        assert await login_refusal(other, "onbekend-4@example.coop") == "INVALID_CREDENTIALS"
        impersonate = {"X-Forwarded-For": "127.0.0.2"}
        assert (
            await login_refusal(spoofer, "onbekend-5@example.coop", **impersonate)
            == "INVALID_CREDENTIALS"
        )
        # Only nginx's overwriting the header guards this one: an appended header would
        # end in the trusted PROXY, and the API hosts would believe the address before it.
        assert (
            await login_refusal(neighbour, "onbekend-8@example.coop", **impersonate)
            == "INVALID_CREDENTIALS"
        )


async def test_an_api_host_that_does_not_trust_the_proxy_locks_everyone_out_at_once(
    folder: Path, certificates: Certificates, servers: Servers
):
    """What GRAPHQL_API_FORWARDED_ALLOW_IPS guards against: a proxy the API hosts do not
    list (here one connecting from 127.0.0.9, as from another machine) is not believed,
    every client is taken for the proxy, and one client's failures lock out every other."""
    with proxy(folder, certificates, servers.behind, proxy_bind="127.0.0.9") as misconfigured:
        async with (
            misconfigured.client("127.0.0.5") as first,
            misconfigured.client("127.0.0.6") as second,
        ):
            await lock_out(first, "onbekend-6@example.coop")
            assert await login_refusal(second, "onbekend-7@example.coop") == "TOO_MANY_ATTEMPTS"


@pytest.mark.parametrize(
    "path", ["/metrics", "/health/ready", "/health/live", "/health", "/%6Detrics"]
)
async def test_health_and_metrics_answer_the_internal_network_only(site: Proxy, path: str):
    async with site.client("127.0.0.2") as outside, site.client(INSIDE) as inside:
        refused = await outside.get(path)
        allowed = await inside.get(path)
    assert refused.status_code == 403
    assert allowed.status_code == 200, allowed.text
    if "etrics" in path:
        assert "graphql_api_requests_total" in allowed.text


async def test_a_body_over_the_limit_is_refused_by_the_proxy(site: Proxy, servers: Servers):
    """A body of exactly GRAPHQL_API_MAX_BODY_BYTES passes and is answered by the API; one
    byte more, sized or chunked, is refused by nginx, and no API host ever sees it."""
    query = json.dumps({"query": "{ __typename }"})
    at_limit = (query + " " * (MAX_BODY - len(query))).encode()

    async def chunked() -> AsyncIterator[bytes]:
        yield at_limit
        yield b" "

    async def post(content: Any, request_id: str) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {servers.token}",
            "Content-Type": "application/json",
            "X-Request-ID": request_id,
        }
        return await http.post("/graphql", content=content, headers=headers)

    async with site.client("127.0.0.2") as http:
        fits = await post(at_limit, "at-the-limit")
        too_large = [
            await post(at_limit + b" ", "over-sized"),
            await post(chunked(), "over-chunked"),
        ]
        # Round robin: one to each API host, to know their logs are past the refused ones.
        after = [await post(query.encode(), f"after-{n}") for n in range(2)]
    assert fits.status_code == 200, fits.text
    assert fits.json() == {"data": {"__typename": "Query"}}
    for refused in too_large:
        assert refused.status_code == 413
        assert "nginx" in refused.text  # nginx's page, not the API's JSON
    assert [answer.status_code for answer in after] == [200, 200]
    for upstream in site.upstreams:
        assert await upstream.logged("after-0", "after-1")
        assert not await upstream.logged("over-sized", "over-chunked", within=0)


async def test_a_file_for_import_passes_the_proxy_up_to_the_upload_limit(
    site: Proxy, servers: Servers
):
    """An upload is far over the 1 MiB of a GraphQL body: /uploads takes up to
    GRAPHQL_API_MAX_UPLOAD_BYTES (50 MiB), which the site's own limit there matches."""
    row = b"Voornaam;Achternaam;E-mail\r\n" + b"Anna;de Vries;anna@example.nl\r\n" * 100_000
    headers = {"Authorization": f"Bearer {servers.token}"}
    async with site.client("127.0.0.2") as http:
        taken = await http.post(
            "/uploads", params={"name": "leden.csv"}, content=row, headers=headers
        )
        over = await http.post("/uploads", content=b"x" * (50 * 2**20 + 1), headers=headers)
    assert taken.status_code == 201, taken.text
    assert taken.json()["size"] == len(row) > 2**20
    assert over.status_code == 413


async def test_the_other_api_host_answers_when_one_stops(
    folder: Path, certificates: Certificates, servers: Servers
):
    with proxy(folder, certificates, [servers.spare, servers.behind[0]]) as both:
        async with both.client("127.0.0.2") as http:
            before = [
                await http.post("/graphql", json={"query": "{ __typename }"}) for _ in range(2)
            ]
            servers.spare.process.terminate()
            servers.spare.process.wait(timeout=15)
            after = [
                await http.post("/graphql", json={"query": "{ __typename }"}) for _ in range(4)
            ]
    assert [answer.status_code for answer in before + after] == [401] * 6


SETTINGS = {
    "graphql_api.settings": "Settings",
    "graphql_api_email_notifications": "SmtpSettings",
    "graphql_api_webhooks": "WebhookSettings",
    "graphql_api_laposta.sync": "LapostaSettings",
}
"""The settings of the service and of the built-in plugins the env example configures."""


def test_the_env_example_holds_only_settings_the_service_reads():
    """deploy/graphql-api.env.example reads as systemd and sh read it, the service and its
    plugins accept its values, and every variable it names, commented out or not, is a
    setting: none that the service would silently ignore."""
    known: set[str] = set()
    for module, name in SETTINGS.items():
        settings = getattr(importlib.import_module(module), name)
        prefix = settings.model_config["env_prefix"]
        for field_name, field in settings.model_fields.items():
            alias = field.validation_alias
            known.add(alias if isinstance(alias, str) else (prefix + field_name).upper())
    named = set(re.findall(r"^#? ?(GRAPHQL_API_\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert named and named <= known, named - known
    # Each class reads its settings from an environment that is the example's alone.
    check = "; ".join(f"from {module} import {name}; {name}()" for module, name in SETTINGS.items())
    read = subprocess.run(
        [
            "sh",
            "-c",
            'set -a; . "$1"; exec "$2" -c "$3"',
            "sh",
            str(ENV_EXAMPLE),
            sys.executable,
            check,
        ],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert read.returncode == 0, read.stderr


def service_section(unit: Path) -> list[tuple[str, str]]:
    """The ``Key=value`` lines of a unit's [Service] section, in order (systemd allows a
    key more than once, as ``SystemCallFilter=`` here, so no dict)."""
    section, lines = "", []
    for line in unit.read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            lines.append((key, value))
    return lines


UNSANDBOXED = {
    "RootDirectory=/RootImage=",
    "PrivateNetwork=",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX",
    "IPAddressDeny=",
    "DeviceAllow=",
}
"""What ``systemd-analyze security`` may find open in the units: the host's file system
(read only), the network and its sockets (the service's work; which addresses depends on
the deployment), and reading the clock's device (ProtectClock= leaves it)."""


def test_the_systemd_units_are_valid_and_sandboxed(tmp_path: Path):
    """systemd itself reads the units (``systemd-analyze verify``: no unknown key, no
    bad value, the program there) and reviews their sandbox (``security``): nothing is
    left open but ``UNSANDBOXED``. Only where the program lies changes, to this one."""
    analyze = debian_program("systemd-analyze", "systemd")
    program = Path(sys.executable).with_name("graphql-api")
    units = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text()
        assert text.count(PROGRAM) == 1, unit.name
        units.append(tmp_path / unit.name)
        units[-1].write_text(text.replace(PROGRAM, str(program)))
    assert [unit.name for unit in units] == ["graphql-api-worker.service", "graphql-api.service"]
    verified = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (verified.returncode, verified.stderr) == (0, "")
    for unit in units:
        review = subprocess.run(
            [analyze, "security", "--offline=yes", str(unit)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert review.returncode == 0, review.stderr
        left_open = set(re.findall(r"^✗ (\S+)", review.stdout, re.M))
        assert left_open and left_open <= UNSANDBOXED, (unit.name, left_open - UNSANDBOXED)


def test_the_systemd_units_agree_with_each_other_and_the_env_example():
    """Both units run as one user, in one sandbox, on the environment file the example
    says to install; serve's stop timeout outlasts GRAPHQL_API_SHUTDOWN_SECONDS, and
    the worker unit is there because serve leaves the outbox to it."""
    serve = service_section(UNITS / "graphql-api.service")
    worker = service_section(UNITS / "graphql-api-worker.service")
    differing = {key for key, _ in set(serve) ^ set(worker)}
    assert differing == {"ExecStart", "KillMode", "TimeoutStopSec"}
    assert dict(serve)["ExecStart"].split()[:2] == [PROGRAM, "serve"]
    assert dict(worker)["ExecStart"].split() == [PROGRAM, "worker"]
    assert dict(serve)["User"] == "graphql-api"
    example = ENV_EXAMPLE.read_text()
    installed_at = dict(serve)["EnvironmentFile"]
    assert example.startswith(f"# {installed_at}:")
    settings = dict(re.findall(r"^(GRAPHQL_API_\w+)=(.*)$", example, re.M))
    assert float(dict(serve)["TimeoutStopSec"]) > float(settings["GRAPHQL_API_SHUTDOWN_SECONDS"])
    assert settings["GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER"] == "false"
    assert settings["GRAPHQL_API_FORWARDED_ALLOW_IPS"] == PROXY
