"""The shipped nginx site (deploy/nginx/graphql-api.conf) run for a test: what a test must
replace in it, and nginx itself in a folder of its own (its certificate:
``graphql_api.testing.certificates``).

- ``render_site(...)``: the site with the test's upstream servers, listen addresses,
  certificate paths and internal networks, and nothing else changed, so that a test
  proves the file an operator installs;
- ``running_nginx(site, folder, proxy_bind=None)``: nginx serving the rendered site until
  the block ends;
- ``nginx_binary()``: where nginx is; skips the test without it, but fails it in CI
  (``CI=true``), which installs nginx."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from graphql_api.testing import debian_program

SITE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "graphql-api.conf"
"""The site an operator installs."""


def nginx_binary() -> str:
    """The path of nginx."""
    return debian_program("nginx", "nginx")


def _replace(text: str, pattern: str, replacement: str) -> str:
    """``text`` with the one match of ``pattern`` (a run of whole lines) replaced; a site
    whose shape changed fails here rather than being tested half replaced."""
    replaced, count = re.subn(pattern, lambda _: replacement, text, flags=re.M)
    if count != 1:
        raise ValueError(f"{SITE.name}: {count} matches of {pattern!r}, expected one")
    return replaced


def render_site(
    *,
    upstreams: Sequence[str],
    listen: str,
    certificate: Path,
    key: Path,
    internal: Sequence[str],
    redirect_listen: str | None = None,
) -> str:
    """deploy/nginx/graphql-api.conf for a test, with only these replaced:

    - ``upstreams``: the ``server`` lines of ``upstream graphql_api``, one per entry
      (``"127.0.0.1:8001"``, parameters may follow: ``"127.0.0.1:8001 max_fails=2"``);
    - ``listen``: the HTTPS server's ``listen`` lines, by one on this address
      (``"127.0.0.1:8443"``);
    - ``certificate``, ``key``: its ``ssl_certificate`` and ``ssl_certificate_key``;
    - ``internal``: the networks allowed ``/health`` and ``/metrics``
      (``["127.0.0.8"]``, ``["10.0.0.0/8"]``);
    - ``redirect_listen``: the plain HTTP server's ``listen`` lines (which redirect to
      HTTPS), by one on this address; by default a free port of ``listen``'s host."""
    if not upstreams or not internal:
        raise ValueError("a site needs at least one upstream and one internal network")
    if redirect_listen is None:
        host = listen.rsplit(":", 1)[0]
        redirect_listen = f"{host}:{_free_port(host.strip('[]'))}"
    text = SITE.read_text()
    text = _replace(
        text,
        r"(^[ \t]*server [^{;\n]+;.*\n)+",
        "".join(f"    server {upstream};\n" for upstream in upstreams),
    )
    text = _replace(text, r"(^[ \t]*listen \S+ ssl\b.*\n)+", f"    listen {listen} ssl http2;\n")
    text = _replace(text, r"(^[ \t]*listen [^ ;]+;.*\n)+", f"    listen {redirect_listen};\n")
    text = _replace(text, r"^[ \t]*ssl_certificate .*\n", f"    ssl_certificate {certificate};\n")
    text = _replace(text, r"^[ \t]*ssl_certificate_key .*\n", f"    ssl_certificate_key {key};\n")
    return _replace(
        text,
        r"(^[ \t]*allow [^;]+;.*\n)+",
        "".join(f"        allow {network};\n" for network in internal),
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Nginx:
    """A running nginx and the folder it writes in (``nginx.conf``, the site, its logs)."""

    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    @property
    def access_log(self) -> Path:
        """One line a request: ``$remote_addr "$request" $status $upstream_addr``."""
        return self.folder / "access.log"


def _main_config(folder: Path, proxy_bind: str | None) -> str:
    """An nginx.conf that keeps everything in ``folder`` and includes ``site.conf``.
    Workers run as whoever runs the test: as root, nginx would otherwise switch them to
    nobody, who may not enter the test's temporary folder to buffer a request body."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    bind = f"proxy_bind {proxy_bind};" if proxy_bind else ""
    return f"""user {user} {group};
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    log_format upstream '$remote_addr "$request" $status $upstream_addr';
    access_log {folder}/access.log upstream;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    {bind}
    include {folder}/site.conf;
}}
"""


@contextlib.contextmanager
def running_nginx(site: str, folder: Path, proxy_bind: str | None = None) -> Iterator[Nginx]:
    """nginx (``nginx -p FOLDER -c FOLDER/nginx.conf -g 'daemon off;'``) serving ``site``
    (from ``render_site``) until the block ends, ready: every address the site listens
    on accepts connections. ``folder`` must exist; nginx's files and logs go there. A
    site nginx refuses raises ``RuntimeError`` with nginx's error log.

    ``proxy_bind``: the loopback address nginx connects to the API hosts from, as a proxy
    on another machine would, set beside the site (in nginx.conf) so the site stays as
    shipped."""
    binary = nginx_binary()
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(_main_config(folder, proxy_bind))
    process = subprocess.Popen(
        [
            binary,
            "-p",
            str(folder),
            "-e",
            str(folder / "error.log"),
            "-c",
            str(folder / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = Nginx(process, folder)
    try:
        for address in re.findall(r"^\s*listen (\S+?)[ ;]", site, re.M):
            host, port = address.rsplit(":", 1)
            _wait_until_listening(running, host.strip("[]"), int(port))
        yield running
    finally:
        # SIGTERM: a fast stop, without waiting for open WebSockets as SIGQUIT would.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(nginx: Nginx, host: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if nginx.process.poll() is not None:
            log = nginx.error_log.read_text() if nginx.error_log.exists() else ""
            raise RuntimeError(f"nginx ended with {nginx.process.returncode}:\n{log}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nginx does not listen on {host}:{port}")
