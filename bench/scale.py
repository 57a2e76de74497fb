"""The service across hosts while its processes die: network namespaces stand in for hosts.

A bridge in the root namespace (10.77.0.1, where nginx, the webhook receiver and the load
client run) joins four namespaces: a database host (its own PostgreSQL cluster, made with
initdb for the run), two API hosts (`graphql-api serve --workers 2` each, their in-process
outbox worker off) and a worker host (`graphql-api worker`). nginx fronts the two API
hosts over TLS. For ``seconds`` the load client sends reads and writes (bench/load.py's
mix: member adds and removes, contact edits, dynamic and composite redefinitions),
follows groups over WebSocket with ``membershipChanged`` (resuming with ``afterEventId``
after each disconnect) and starts one bulk job (``addGroupMembers`` ``from:`` a filter
beyond ``GRAPHQL_API_BULK_INLINE_LIMIT``). Meanwhile: `kill -9` of the worker (mid-job),
then a new one; `kill -9` of every process of one API host, which comes back later; and
`pg_ctl restart -m fast` of the database.

A request that meets a connection-type error (the connection refused or cut, nginx's 502
for a host that died under it, 503 ``SERVICE_UNAVAILABLE`` while the database restarts)
is counted and sent again until it is answered; any other error is a failure. Then, with
the load stopped and the worker drained: bench/load.py's invariants (counts, members,
``check-membership``, history equal to the rows, history equal to the outbox), every
delivery done, every event at the webhook receiver at least once (a repeat only under the
same ``X-Webhook-Id`` with the same body), every subscriber's messages exactly the events
table's for its group, the job done. It prints the figures and exits 1 when anything
failed (the processes' logs stay in /tmp/graphql-api-scale until the next run).

It needs root (namespaces; the cluster runs as the postgres user), `ip`, nginx and
PostgreSQL's programs (/usr/lib/postgresql/N/bin). Namespaces, processes and nginx go at
the end, however the run ends (SIGTERM included), and a killed run's leftovers at the
start of the next. `make scale-test` runs it for 60 seconds; tests/test_scale.py for 20,
asserting the same; by hand (as root)::

    .venv/bin/python bench/scale.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphql_api_webhooks import event_subscriptions

from bench.faults import insert_contacts
from bench.load import (
    MEMBERS,
    World,
    admin_token,
    codes_of,
    environment,
    faults_in,
    invariant_problems,
    next_request,
    prepare,
)
from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.kernel.db import create_engine
from graphql_api.notifications.models import Delivery, DeliveryStatus, OutboxEvent
from graphql_api.testing import CLI, GraphQLClient, cli, new_static_group_id
from graphql_api.testing.certificates import make_certificates
from tests.nginx_site import render_site, running_nginx

NET = "10.77.0"
ROOT = f"{NET}.1"
"""The root namespace's address on the bridge: nginx, the webhook receiver, the client."""
BRIDGE = "scale-br0"
HOSTS = {"db": 10, "api1": 11, "api2": 12, "worker": 13}
"""Namespace (``scale-<name>``) and the last byte of its address."""
API_PORT = 8000
PROXY_PORT = 8443
STATE = Path("/tmp/graphql-api-scale")
"""The run's files (cluster, logs, nginx): a fixed place, so that the next run finds what a
killed one left behind. Readable by all: the postgres user reaches its data through it."""
BULK = 3_000
"""Contacts the bulk job adds; the inline limit is lowered well below it."""
WRITERS = 12
READERS = 4
RESUME_AFTER_FAULT = 15.0
"""Seconds after a fault in which connection-type errors are expected."""
WAIT = 120.0
"""Seconds the drain (job, deliveries, subscribers) may take before the run fails."""
ACCEPTED_CODES = {"CONFLICT", "NOT_FOUND"}
"""Payload codes bench/load.py's mix gets without any fault (tests/test_load.py)."""
MEMBERSHIP_CHANGES = """subscription($g: ID!, $after: Int) {
  membershipChanged(groupId: $g, afterEventId: $after) { eventId action contactId } }"""
BULK_ADD = """mutation($g: ID!, $city: String!) { addGroupMembers(groupId: $g,
  from: {filter: {condition: {field: "city", op: EQ, value: $city}}}) {
  job { id } errors { code } } }"""
JOB = "query($id: ID!) { job(id: $id) { state total done } }"


def say(message: str) -> None:
    """Progress, on stderr: the run takes minutes."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def namespace(host: str) -> str:
    return f"scale-{host}"


def outer_link(host: str) -> str:
    """The root namespace's end of ``host``'s veth pair."""
    return f"scale-{host}-v"


def address(host: str) -> str:
    return f"{NET}.{HOSTS[host]}"


def on(host: str, *command: str) -> list[str]:
    """``command`` as run on ``host``: in its network namespace."""
    return ["ip", "netns", "exec", namespace(host), *command]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def must(*command: str) -> str:
    done = run(*command)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return done.stdout


def kill_host(host: str) -> int:
    """`kill -9` of every process on ``host``: how many there were."""
    pids = run("ip", "netns", "pids", namespace(host)).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    return len(pids)


def tear_down() -> None:
    """Every process, namespace and link of a run, this one's or a killed one's. Its files
    stay until the next run, for a failure's logs."""
    for host in HOSTS:
        if run("ip", "netns", "pids", namespace(host)).returncode == 0:
            kill_host(host)
            run("ip", "netns", "del", namespace(host))
        # Both ends at once: a namespace outlives its deletion while the kernel still
        # holds its sockets of a killed process (minutes, for an unanswered FIN).
        run("ip", "link", "del", outer_link(host))
    run("ip", "link", "del", BRIDGE)
    with contextlib.suppress(OSError, ValueError):  # nginx of a run killed before its end
        stop_nginx(int((STATE / "nginx" / "nginx.pid").read_text()))


def stop_nginx(master: int) -> None:
    """SIGTERM, which stops nginx's workers with it: once killed, its master leaves them
    running, and holding the addresses the next run listens on."""
    if str(STATE) not in Path(f"/proc/{master}/cmdline").read_text():
        return  # a stale pid file: the number is another process's now
    os.kill(master, signal.SIGTERM)
    for _ in range(100):
        os.kill(master, 0)  # ProcessLookupError once it is gone
        time.sleep(0.05)
    os.kill(master, signal.SIGKILL)


@contextlib.contextmanager
def hosts() -> Iterator[Path]:
    """The bridge and a namespace per host, each joined to it by a veth pair: the run's
    folder. Everything goes at the end, however the run ends."""
    tear_down()
    shutil.rmtree(STATE, ignore_errors=True)
    try:
        STATE.mkdir(mode=0o755)
        (STATE / "nginx").mkdir()
        must("ip", "link", "add", BRIDGE, "type", "bridge")
        must("ip", "addr", "add", f"{ROOT}/24", "dev", BRIDGE)
        must("ip", "link", "set", BRIDGE, "up")
        for host in HOSTS:
            ns, outside = namespace(host), outer_link(host)
            must("ip", "netns", "add", ns)
            must("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            must("ip", "link", "set", outside, "master", BRIDGE, "up")
            must("ip", "-n", ns, "addr", "add", f"{address(host)}/24", "dev", "eth0")
            must("ip", "-n", ns, "link", "set", "eth0", "up")
            must("ip", "-n", ns, "link", "set", "lo", "up")
        yield STATE
    finally:
        tear_down()


def postgresql_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        raise RuntimeError("no PostgreSQL in /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1].parent


class Database:
    """A PostgreSQL cluster of its own on the database host, run as the postgres user
    (PostgreSQL refuses root)."""

    def __init__(self, directory: Path) -> None:
        self.data = directory / "pgdata"
        self.bin = postgresql_bin()
        self.url = f"postgresql+asyncpg://postgres@{address('db')}:5432/graphql_api"

    def _ctl(self, *arguments: str) -> list[str]:
        options = f"-c listen_addresses={address('db')} -c max_connections=200"
        options += f" -c unix_socket_directories={self.data}"
        log = str(self.data / "postgresql.log")
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-o", options]
        return on("db", "runuser", "-u", "postgres", "--", *pg_ctl, *arguments)

    def start(self) -> None:
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        must("runuser", "-u", "postgres", "--", *initdb)
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {NET}.0/24 trust\n")
        must(*self._ctl("start"))
        must(str(self.bin / "createdb"), "-h", address("db"), "-U", "postgres", "graphql_api")

    async def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back at once."""
        process = await asyncio.create_subprocess_exec(
            *self._ctl("restart", "-m", "fast"), stdout=subprocess.DEVNULL
        )
        assert await process.wait() == 0, "pg_ctl restart failed"


class Receiver:
    """The webhook receiver: every POST's ``X-Webhook-Id`` and body, answered 204. It runs
    in a thread of its own so that the load's event loop does not slow it."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[int, bytes]] = []
        config = uvicorn.Config(
            self.app, host=ROOT, port=port, log_level="warning", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{ROOT}:{port}/hook"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        key = dict(scope["headers"]).get(b"x-webhook-id", b"0")
        self.received.append((int(key), body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def __enter__(self) -> Receiver:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the webhook receiver did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Subscriber:
    """One client following one group's members; what it received, in order."""

    group: str
    start: int
    """The ``afterEventId`` it first subscribed with."""
    messages: list[tuple[int, str, str]] = field(default_factory=list)
    """(eventId, action, contactId), the repeats of a resumed event left out."""
    connections: int = 0
    resent: int = 0
    """Messages received again because their event was cut short by a disconnect."""

    def resume_after(self) -> int:
        """The last event all of whose messages arrived: the last message's event may be
        cut short, so its messages are dropped and it is asked for again."""
        if not self.messages:
            return self.start
        last = self.messages[-1][0]
        while self.messages and self.messages[-1][0] == last:
            self.messages.pop()
            self.resent += 1
        return self.messages[-1][0] if self.messages else self.start


@dataclass
class Figures:
    """What the run did and what it got back."""

    seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    """Answered requests by kind."""
    errors: Counter[str] = field(default_factory=Counter)
    """Connection-type errors by kind of request and of error, each followed by a retry."""
    unexpected: list[str] = field(default_factory=list)
    """Anything else that went wrong: a failure."""
    late: list[str] = field(default_factory=list)
    """Connection-type errors outside the seconds after a fault: a failure."""
    codes: Counter[str] = field(default_factory=Counter)
    faults: dict[str, float] = field(default_factory=dict)
    """Each fault and the second of the load it happened at."""
    killed: Counter[str] = field(default_factory=Counter)
    """Processes killed, by host."""
    refused: Counter[str] = field(default_factory=Counter)
    """Starts of `serve` refused while the database restarted (then started again)."""
    unknown: int = 0
    """Writes whose answer was lost after they were sent: sent again."""
    created_twice: int = 0
    """Of those, createContact whose lost attempt had committed: the contact twice."""
    job: dict[str, Any] = field(default_factory=dict)
    job_done_at_worker_kill: int | None = None
    disconnects: Counter[str] = field(default_factory=Counter)
    subscribers: list[Subscriber] = field(default_factory=list)
    subscription_gaps: int = 0
    subscription_duplicates: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    """Deliveries by plugin and status once the worker drained."""
    webhooks_received: int = 0
    webhook_keys: int = 0
    webhook_events_missed: int = 0
    webhook_repeats_differing: int = 0
    problems: list[str] = field(default_factory=list)
    """bench/load.py's invariants broken afterwards."""
    checked: dict[str, int] = field(default_factory=dict)
    server_faults: Counter[str] = field(default_factory=Counter)
    """Faults the processes logged (ERROR with a traceback), by exception."""

    def failures(self) -> list[str]:
        """What makes the run fail: anything but a retried connection error near a fault,
        anything lost or repeated."""
        undone = {
            k: n for k, n in self.deliveries.items() if not k.endswith(("DELIVERED", "SKIPPED"))
        }
        found = [
            *self.unexpected,
            *(f"connection error away from any fault: {late}" for late in self.late),
            *self.problems,
            *(f"server fault: {fault} x{n}" for fault, n in self.server_faults.items()),
        ]
        checks = {
            "the bulk job did not succeed": self.job.get("state") != "SUCCEEDED",
            f"subscription gaps {self.subscription_gaps}": self.subscription_gaps > 0,
            f"subscription duplicates {self.subscription_duplicates}": self.subscription_duplicates
            > 0,
            f"deliveries not done: {undone}": bool(undone),
            f"webhook events missed {self.webhook_events_missed}": self.webhook_events_missed > 0,
            f"webhook repeats with another body {self.webhook_repeats_differing}": (
                self.webhook_repeats_differing > 0
            ),
            "no fault happened": len(self.faults) < 4,
        }
        return found + [message for message, failed in checks.items() if failed]

    def table(self) -> str:
        requests = self.requests.total()
        rows = [
            ("load", f"{self.seconds:.0f} s, {requests} requests answered "
             f"({requests / self.seconds:.0f}/s)"),
            ("answered by kind", dict(self.requests)),
            ("faults at second", {k: round(v, 1) for k, v in self.faults.items()}),
            ("processes killed", dict(self.killed)),
            ("  starts refused, database down", dict(self.refused)),
            ("connection errors, retried", dict(self.errors)),
            ("other errors", len(self.unexpected) + len(self.late)),
            ("payload codes", dict(self.codes)),
            ("writes sent again, outcome unknown", self.unknown),
            ("  of which created a contact twice", self.created_twice),
            ("bulk job", self.job),
            ("  done when the worker was killed", self.job_done_at_worker_kill),
            ("subscriber reconnects by cause", dict(self.disconnects)),
            ("subscription messages", sum(len(s.messages) for s in self.subscribers)),
            ("  resent after a cut event", sum(s.resent for s in self.subscribers)),
            ("  gaps / duplicates", f"{self.subscription_gaps} / {self.subscription_duplicates}"),
            ("deliveries", dict(self.deliveries)),
            ("webhook POSTs / distinct ids", f"{self.webhooks_received} / {self.webhook_keys}"),
            ("  events missed / repeats differing",
             f"{self.webhook_events_missed} / {self.webhook_repeats_differing}"),
            ("invariants checked", self.checked),
            ("invariants broken", self.problems),
            ("server faults logged", dict(self.server_faults)),
        ]  # fmt: skip
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class Cluster:
    """The hosts' processes: start, kill, restart."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.logs: list[Path] = []
        self.refused: Counter[str] = Counter()
        """Starts of `serve` that ended before it was ready, by host."""

    def _spawn(self, host: str, *command: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"{host}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as out:
            return subprocess.Popen(
                on(host, *CLI, *command), env=self.env, stdout=subprocess.DEVNULL, stderr=out
            )

    async def start_api(self, host: str) -> None:
        """`serve` on ``host``, until it is ready. Started again when it ends first, as
        systemd's ``Restart=on-failure`` does: `serve` refuses to start while the database
        is down, which a restart of the database makes it for a moment."""
        command = ["serve", "--host", address(host), "--port", str(API_PORT), "--workers", "2"]
        process = self._spawn(host, *command)
        ready = f"http://{address(host)}:{API_PORT}/health/ready"
        deadline = time.monotonic() + WAIT
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    self.refused[host] += 1
                    await asyncio.sleep(1)
                    process = self._spawn(host, *command)
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(ready)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{host} did not become ready")

    def start_worker(self) -> None:
        self._spawn("worker", "worker")

    def server_faults(self) -> Counter[str]:
        faults: Counter[str] = Counter()
        for log in self.logs:
            with log.open() as lines:
                faults += faults_in(lines)
        return faults


@contextlib.contextmanager
def proxy(directory: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """nginx in the root namespace in front of both API hosts, with the site an operator
    installs: its URL and the TLS context that trusts it."""
    made = make_certificates(directory, hosts=(ROOT,))
    site = render_site(
        upstreams=[f"{address(h)}:{API_PORT}" for h in ("api1", "api2")],
        listen=f"{ROOT}:{PROXY_PORT}",
        certificate=made.certificate,
        key=made.key,
        internal=[f"{NET}.0/24"],
    )
    with running_nginx(site, directory / "nginx"):
        yield f"https://{ROOT}:{PROXY_PORT}", ssl.create_default_context(cafile=made.ca)


class Load:
    """The load client: retries connection-type errors, counts everything."""

    def __init__(self, url: str, token: str, tls: ssl.SSLContext, figures: Figures) -> None:
        self.url = url
        self.token = token
        self.tls = tls
        self.figures = figures
        self.started = time.monotonic()
        self.created: list[str] = []
        self.job_started = asyncio.Event()
        """Set once the bulk job has done part of its work."""
        """Last names of contacts whose createContact was sent more than once."""

    def now(self) -> float:
        return time.monotonic() - self.started

    def connection_error(self, kind: str, what: str) -> None:
        """Counts it, and notes it as late when no fault happened just before."""
        self.figures.errors[f"{kind}: {what}"] += 1
        second = self.now()
        if not any(0 <= second - at <= RESUME_AFTER_FAULT for at in self.figures.faults.values()):
            self.figures.late.append(f"{kind} {what} at {second:.1f} s")

    async def request(
        self, http: httpx.AsyncClient, kind: str, document: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        """POST until answered; the data. A write whose answer was lost counts as unknown."""
        headers = {"Authorization": f"Bearer {self.token}"}
        payload = {"query": document, "variables": variables}
        sent_before = False
        deadline = time.monotonic() + WAIT
        while True:
            try:
                response = await http.post("/graphql", json=payload, headers=headers)
            except httpx.TransportError as error:
                what = type(error).__name__
                sent = not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                body = (
                    response.json()
                    if response.headers.get("content-type", "").startswith("application/")
                    else {}
                )
                codes = codes_of(body)
                if response.status_code == 503 and codes == ["SERVICE_UNAVAILABLE"]:
                    what, sent = "503 SERVICE_UNAVAILABLE", True
                elif response.status_code == 502:
                    what, sent = "502 from nginx", True
                else:
                    self.figures.requests[kind] += 1
                    if response.status_code != 200 or "data" not in body:
                        self.figures.unexpected.append(f"{kind}: {response.status_code} {body}")
                        return {}
                    self.figures.codes.update(codes)
                    if set(codes) - ACCEPTED_CODES:
                        self.figures.unexpected.append(f"{kind}: {codes}")
                    if sent_before and kind != "read":
                        self.figures.unknown += 1
                        if kind == "create contact":
                            self.created.append(variables["input"]["lastName"])
                    return body["data"]
            self.connection_error(kind, what)
            sent_before = sent_before or sent
            if time.monotonic() > deadline:
                self.figures.unexpected.append(f"{kind}: no answer for {WAIT:.0f} s")
                return {}
            await asyncio.sleep(0.2)

    def client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections)
        return httpx.AsyncClient(base_url=self.url, verify=self.tls, timeout=60, limits=limits)

    async def writer(self, world: World, rng: random.Random, end: float) -> None:
        async with self.client(1) as http:
            while self.now() < end:
                operation, document, variables = next_request(world, rng)
                if operation == "create contact":
                    # A name of its own, to count afterwards how often it was created.
                    variables = {"input": {**variables["input"], "lastName": uuid.uuid4().hex}}
                data = await self.request(http, operation, document, variables)
                created = (data.get("createContact") or {}).get("contact")
                if created:
                    world.contacts.append(created["id"])

    async def reader(self, world: World, rng: random.Random, end: float) -> None:
        groups = world.statics + world.dynamics + world.composites
        async with self.client(1) as http:
            while self.now() < end:
                await self.request(http, "read", MEMBERS, {"id": rng.choice(groups), "after": None})

    async def bulk(self, group: str, city: str) -> None:
        """The bulk job, started and followed until it has ended."""
        async with self.client(1) as http:
            added = await self.request(http, "bulk", BULK_ADD, {"g": group, "city": city})
            job_id = ((added.get("addGroupMembers") or {}).get("job") or {}).get("id")
            if job_id is None:
                self.figures.unexpected.append(f"bulk: no job started: {added}")
                return
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                job = (await self.request(http, "read", JOB, {"id": job_id})).get("job")
                if job is None:
                    self.figures.unexpected.append(f"bulk: job {job_id} not found")
                    return
                self.figures.job = job
                if job["done"]:
                    self.job_started.set()
                if job["state"] not in ("QUEUED", "RUNNING"):
                    return
                await asyncio.sleep(0.5)

    async def follow(self, subscriber: Subscriber) -> None:
        """Follows one group until cancelled, resuming after every disconnect."""
        url = self.url.replace("https", "wss") + "/graphql"
        protocols = [websockets.Subprotocol("graphql-transport-ws")]
        while True:
            after = subscriber.resume_after()
            try:
                async with websockets.connect(url, subprotocols=protocols, ssl=self.tls) as socket:
                    init = {"Authorization": f"Bearer {self.token}"}
                    await socket.send(json.dumps({"type": "connection_init", "payload": init}))
                    assert json.loads(await socket.recv())["type"] == "connection_ack"
                    variables = {"g": subscriber.group, "after": after}
                    subscribe = {"query": MEMBERSHIP_CHANGES, "variables": variables}
                    await socket.send(
                        json.dumps({"id": "1", "type": "subscribe", "payload": subscribe})
                    )
                    subscriber.connections += 1
                    async for raw in socket:
                        message = json.loads(raw)
                        payload = message.get("payload") or {}
                        if message["type"] == "next" and "errors" not in payload:
                            change = payload["data"]["membershipChanged"]
                            subscriber.messages.append(
                                (change["eventId"], change["action"], change["contactId"])
                            )
                        elif codes_of(payload) == ["SERVICE_UNAVAILABLE"]:
                            self.figures.disconnects["SERVICE_UNAVAILABLE"] += 1
                            self.connection_error("subscription", "SERVICE_UNAVAILABLE")
                            break
                        else:
                            self.figures.unexpected.append(f"subscription: {message}")
                            break
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else "none"
                self.figures.disconnects[f"closed {code}"] += 1
            except (OSError, websockets.InvalidHandshake, TimeoutError) as error:
                self.figures.disconnects[type(error).__name__] += 1
                self.connection_error("subscribe", type(error).__name__)
            await asyncio.sleep(0.2)


async def read_all(url: str, query: Callable[[Any], Awaitable[Any]]) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await query(connection)
    finally:
        await engine.dispose()


async def last_event(url: str) -> int:
    return await read_all(
        url, lambda c: c.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0)))
    )


async def expected_messages(url: str, subscriber: Subscriber) -> list[tuple[int, str, str]]:
    """The messages the events table holds for the subscriber's group since it started."""
    parsed = parse_global_id(subscriber.group)
    assert parsed is not None
    events = await read_all(
        url,
        lambda c: c.execute(
            select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.data)
            .where(OutboxEvent.id > subscriber.start)
            .where(OutboxEvent.type.in_(["members.added", "members.removed"]))
            .order_by(OutboxEvent.id)
        ),
    )
    return [
        (event, "ADDED" if kind == "members.added" else "REMOVED", to_global_id("Contact", c))
        for event, kind, data in events
        if data["group"]["id"] == parsed[1]
        for c in data["contactIds"]
    ]


async def deliveries(url: str) -> list[tuple[int, int, str, DeliveryStatus]]:
    """(delivery, event, plugin, status) of every delivery."""
    rows = await read_all(
        url,
        lambda c: c.execute(
            select(Delivery.id, Delivery.event_id, Delivery.plugin, Delivery.status)
        ),
    )
    return [tuple(row) for row in rows]


async def drained(url: str, figures: Figures, subscribers: list[Subscriber]) -> None:
    """Waits until no delivery is left to make and each subscriber has every message the
    events table holds for it (or the wait is over); their figures."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        states = Counter(status for *_, status in await deliveries(url))
        if not states.keys() & {DeliveryStatus.PENDING, DeliveryStatus.FAILED}:
            break
        await asyncio.sleep(0.5)
    expected = {id(s): await expected_messages(url, s) for s in subscribers}
    while time.monotonic() < deadline:
        if all(len(s.messages) >= len(expected[id(s)]) for s in subscribers):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # a repeat on its way would arrive now
    for s in subscribers:
        received, wanted = Counter(s.messages), Counter(expected[id(s)])
        figures.subscription_gaps += (wanted - received).total()
        figures.subscription_duplicates += (received - wanted).total()
        if [m[0] for m in s.messages] != sorted(m[0] for m in s.messages):
            figures.unexpected.append(f"subscriber of {s.group}: events out of order")


async def webhooks_checked(url: str, receiver: Receiver, figures: Figures) -> None:
    made = await deliveries(url)
    figures.deliveries = Counter(f"{plugin} {status.value}" for *_, plugin, status in made)
    bodies: dict[int, set[bytes]] = {}
    for key, body in list(receiver.received):
        bodies.setdefault(key, set()).add(body)
    figures.webhooks_received = len(receiver.received)
    figures.webhook_keys = len(bodies)
    webhook_events = {
        event: delivery for delivery, event, plugin, _ in made if plugin == "webhooks"
    }
    figures.webhook_events_missed = sum(d not in bodies for d in webhook_events.values())
    figures.webhook_repeats_differing = sum(len(b) > 1 for b in bodies.values())
    # Every event the webhooks plugin subscribes to has its delivery.
    subscribed = set(event_subscriptions())
    events = await read_all(url, lambda c: c.execute(select(OutboxEvent.id, OutboxEvent.type)))
    for event, kind in events:
        if kind in subscribed and event not in webhook_events:
            figures.unexpected.append(f"event {event} ({kind}) has no webhook delivery")


async def created_twice(url: str, names: list[str]) -> int:
    if not names:
        return 0
    counts = await read_all(
        url,
        lambda c: c.execute(
            select(Contact.last_name, func.count())
            .where(Contact.last_name.in_(names))
            .group_by(Contact.last_name)
        ),
    )
    return sum(n - 1 for _, n in counts)


async def scale(seconds: float, directory: Path) -> Figures:
    """The whole run (as root): hosts up, load and faults, drain, checks."""
    figures = Figures()
    database = Database(directory)
    database.start()
    receiver_port = 8090
    env = {
        **environment(database.url),
        "GRAPHQL_API_FORWARDED_ALLOW_IPS": ROOT,
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
        "GRAPHQL_API_BULK_INLINE_LIMIT": "100",
        "GRAPHQL_API_JOB_CHUNK_SIZE": "100",
        "GRAPHQL_API_JOB_LEASE_SECONDS": "3",
        "GRAPHQL_API_OUTBOX_LEASE_SECONDS": "3",
        "GRAPHQL_API_OUTBOX_RETRY_BASE_SECONDS": "0.5",
        "GRAPHQL_API_OUTBOX_POLL_SECONDS": "0.2",
        "GRAPHQL_API_WEBHOOK_URLS": f"http://{ROOT}:{receiver_port}/hook",
        "GRAPHQL_API_WEBHOOK_SECRET": "scale",
        # As in production: the test suite's "check" answers each query twice, from two
        # snapshots, which concurrent writes make differ.
        "GRAPHQL_API_COMPILED_READS": "on",
        "GRAPHQL_API_SMTP_CATCH": "true",  # e-mail is logged: no mail server on the hosts
    }
    say("database up; migrating and seeding")
    for step in (["migrate"], ["seed", "--demo"]):
        done = cli(env, *step)
        assert done.returncode == 0, done.stderr
    token = admin_token(env)
    await insert_contacts(database.url, BULK, city="Bulkdorp")
    cluster = Cluster(directory, env)
    with Receiver(receiver_port) as receiver, proxy(directory) as (url, tls):
        await asyncio.gather(cluster.start_api("api1"), cluster.start_api("api2"))
        cluster.start_worker()
        say("API hosts ready, worker started; preparing the groups")
        load = Load(url, token, tls, figures)
        async with load.client(4) as http:
            client = GraphQLClient(http, token)
            world = await prepare(client)
            bulk_group = await new_static_group_id(client, "Bulk", [])
        start = await last_event(database.url)
        groups = [*world.statics[:2], world.dynamics[0], world.dynamics[2], world.composites[0]]
        subscribers = [Subscriber(group, start) for group in [*groups, bulk_group]]
        figures.subscribers = subscribers
        following = [asyncio.create_task(load.follow(s)) for s in subscribers]
        await asyncio.sleep(1)  # subscribed
        say(f"load for {seconds:.0f} s")
        load.started = time.monotonic()
        traffic = [
            *(load.writer(world, random.Random(n), seconds) for n in range(WRITERS)),
            *(load.reader(world, random.Random(100 + n), seconds) for n in range(READERS)),
        ]

        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, fraction * seconds - load.now()))

        async def fault(name: str, fraction: float) -> None:
            await at(fraction)
            figures.faults[name] = load.now()
            say(f"{name} at {load.now():.1f} s of the load")

        async def worker_faults() -> None:
            await at(0.05)
            bulk = asyncio.create_task(load.bulk(bulk_group, "Bulkdorp"))
            with contextlib.suppress(TimeoutError):  # killed mid-job, when the job is quick
                await asyncio.wait_for(load.job_started.wait(), 0.2 * seconds)
            await fault("kill -9 worker", 0)
            figures.killed["worker"] += kill_host("worker")
            figures.job_done_at_worker_kill = figures.job.get("done")
            await at(0.25)
            cluster.start_worker()
            await bulk

        async def api_faults() -> None:
            await fault("kill -9 api1", 0.3)
            figures.killed["api1"] += kill_host("api1")
            await at(0.45)
            await cluster.start_api("api1")
            await fault("api1 back", 0)

        async def database_faults() -> None:
            await fault("pg_ctl restart -m fast", 0.65)
            await database.restart()

        await asyncio.gather(*traffic, worker_faults(), api_faults(), database_faults())
        figures.seconds = load.now()
        say("load over; waiting for the worker and the subscribers to drain")
        await drained(database.url, figures, subscribers)
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        await webhooks_checked(database.url, receiver, figures)
        figures.created_twice = await created_twice(database.url, load.created)
        say("checking the invariants")
        async with load.client(4) as http:
            client = GraphQLClient(http, token)
            figures.problems, figures.checked = await invariant_problems(client, database.url, env)
        figures.server_faults = cluster.server_faults()
        figures.refused = cluster.refused
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.seconds < 10:
        parser.error("--seconds must be at least 10: the faults need the time between them")
    # SIGTERM ends the run as Ctrl-C does: through the clean-up.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    with hosts() as directory:
        figures = await scale(args.seconds, directory)
    print(figures.table())
    failures = figures.failures()
    print("\n".join(["", f"FAILED (logs in {STATE}):", *failures] if failures else ["", "passed"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
