"""Processes for the benchmarks that talk HTTP: `graphql-api serve` and `graphql-api worker`
with their output in a log file, a webhook receiver on loopback, and a sampler of the
resident memory (VmRSS) of their process trees.

Each process is started in a session of its own and stopped with its whole process group
(SIGTERM, then SIGKILL), so nothing outlives the benchmark. The receiver runs apart (this
file as a script) so that its work does not slow the benchmark's own client.

    python bench/serving.py receive PORT    # answer 200 to every POST; GET /count
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "graphql_api.cli"]


class BenchError(RuntimeError):
    """The benchmark could not measure (as opposed to a target missed)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: Mapping[str, str], *args: str, timeout: float = 600) -> str:
    """``graphql-api ARGS``: its standard output, or a BenchError with its standard error."""
    done = subprocess.run(
        [*CLI, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"graphql-api {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


class Process:
    """A child process in a session of its own, its stdout and stderr in ``log``."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("w")
        self.popen = subprocess.Popen(
            list(args),
            env=dict(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after ``grace`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # children that outlived their parent too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._out.close()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_server(env: Mapping[str, str], log: Path, timeout: float = 60.0) -> tuple[str, Process]:
    """`graphql-api serve` on a free loopback port, once /health/ready answers 200."""
    port = free_port()
    process = Process("serve", [*CLI, "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise BenchError(
                f"graphql-api serve exited ({process.popen.returncode}):\n{process.tail()}"
            )
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.stop()
    raise BenchError(f"graphql-api serve was not ready within {timeout:.0f} s:\n{process.tail()}")


def start_worker(env: Mapping[str, str], log: Path) -> Process:
    """`graphql-api worker`, checked to be still running after its start."""
    process = Process("worker", [*CLI, "worker"], env, log)
    time.sleep(2)
    if not process.alive():
        raise BenchError(
            f"graphql-api worker exited ({process.popen.returncode}):\n{process.tail()}"
        )
    return process


class Receiver:
    """The webhook receiver (this file as a script) on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.process = Process(
            "receiver",
            [sys.executable, str(Path(__file__).resolve()), "receive", str(self.port)],
            os.environ,
            log,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.count()
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.process.stop()
        raise BenchError(f"the webhook receiver did not start:\n{self.process.tail()}")

    def count(self) -> dict[str, int]:
        """POSTs received, and distinct ``X-Webhook-Id`` among them."""
        return httpx.get(f"{self.url}/count", timeout=5).json()

    def stop(self) -> None:
        self.process.stop(grace=2)


def receive(port: int) -> None:
    posts = 0
    ids: set[str] = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            nonlocal posts
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                posts += 1
                ids.add(self.headers.get("X-Webhook-Id") or "")
            self._answer(b"{}")

        def do_GET(self) -> None:
            with lock:
                body = json.dumps({"posts": posts, "ids": len(ids)}).encode()
            self._answer(body)

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return None

    class Server(http.server.ThreadingHTTPServer):
        # A worker POSTs a whole batch of deliveries at once, each on a new connection:
        # the default backlog of 5 drops connections (the worker sees ReadError).
        request_queue_size = 1024
        daemon_threads = True

    Server(("127.0.0.1", port), Handler).serve_forever()


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children[parent].append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Samples the summed VmRSS of each named process tree every ``interval`` seconds, in
    a thread, from ``start()`` until ``stop()``."""

    roots: dict[str, int]
    interval: float = 0.5
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            sizes = {
                name: sum(rss_kib(pid) for pid in process_tree(root))
                for name, root in self.roots.items()
            }
            self.samples.append((now, sizes))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def peaks(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float]:
        """MB (10^6 bytes) at the highest sample of each tree between two monotonic times."""
        peak = dict.fromkeys(self.roots, 0)
        for moment, sizes in list(self.samples):
            if since <= moment <= until:
                for name, kib in sizes.items():
                    peak[name] = max(peak[name], kib)
        return {name: kib * 1024 / 1e6 for name, kib in peak.items()}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "receive":
        receive(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
