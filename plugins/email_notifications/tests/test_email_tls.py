"""E-mail over TLS, implicit (port 465) and STARTTLS (587), to real aiosmtpd servers on
loopback with certificates of CAs the tests make: the server's certificate is always
verified, and a mail that cannot go out verified goes out not at all, never in clear."""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql_api_email_notifications
import httpx
import pytest
from smtp_testing import contacts, deliveries
from sqlalchemy import update

from graphql_api.notifications.models import Delivery
from graphql_api.testing import GraphQLClient, add_members, cli, make_user, make_worker
from graphql_api.testing.certificates import make_certificates, server_context

LOOPBACK = "127.0.0.1"
TLS_VERSION = "TLSv1.3"  # what both ends' default contexts agree on


@dataclass(frozen=True)
class Authority:
    """A CA of the tests' own: its certificate, in the PEM file the plugin is told to trust,
    and a server certificate for 127.0.0.1 it signed, as a server's TLS context."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_authority(folder: Path, name: str) -> Authority:
    """A CA named ``name`` and a server certificate for 127.0.0.1 it signed."""
    (folder / name).mkdir()
    made = make_certificates(folder / name, hosts=(LOOPBACK,), ca_name=name)
    return Authority(made.ca, server_context(made))


@pytest.fixture(scope="session")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Authority]:
    """``ours``, the CA the plugin is told to trust, and ``another``, which it is not."""
    folder = tmp_path_factory.mktemp("pki")
    return {name: make_authority(folder, name) for name in ("ours", "another")}


def server_options(mode: str, authority: Authority | None) -> dict[str, Any]:
    """aiosmtpd's options for a server speaking ``mode`` ("TLS" or "STARTTLS") with the
    certificate ``authority`` signed; without one, a server in clear that offers no
    STARTTLS. The STARTTLS server takes mail in clear too, so a client that fell back to
    clear would be seen."""
    if authority is None:
        return {}
    if mode == "TLS":
        return {"ssl_context": authority.server_context}
    return {"tls_context": authority.server_context}


@pytest.fixture
def signer() -> str | None:
    """The CA that signed the server's certificate (None: the server has no TLS)."""
    return "ours"


@pytest.fixture
def trusted() -> str | None:
    """The CA in ``GRAPHQL_API_SMTP_CA_FILE`` (None: unset, the system's CAs)."""
    return "ours"


@pytest.fixture
def host() -> str:
    """The name the plugin connects to; the server's certificate is for 127.0.0.1 alone."""
    return LOOPBACK


@pytest.fixture
def smtp_options(
    mode: str,
    signer: str | None,
    trusted: str | None,
    host: str,
    authorities: dict[str, Authority],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The server for ``mode`` ("TLS" or "STARTTLS", which each test names), and the plugin
    set to it: ``GRAPHQL_API_SMTP_<mode>=true``, ``host`` and the CA file of ``trusted``."""
    monkeypatch.setenv(f"GRAPHQL_API_SMTP_{mode}", "true")
    monkeypatch.setenv("GRAPHQL_API_SMTP_HOST", host)
    if trusted is not None:
        monkeypatch.setenv("GRAPHQL_API_SMTP_CA_FILE", str(authorities[trusted].ca_file))
    return server_options(mode, authorities[signer] if signer else None)


PEOPLE = (("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
ADDRESSES = sorted(address for _, address in PEOPLE)


@pytest.mark.parametrize("mode", ["TLS", "STARTTLS"])
async def test_mail_goes_out_over_tls(mode: str, setup: Any, smtp: Any) -> None:
    app, client, group = setup
    inbox, _ = smtp
    await add_members(client, group, await contacts(client, *PEOPLE))
    await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == ADDRESSES
    assert inbox.tls == [TLS_VERSION] * 2, "the server saw each message over TLS"
    assert {tls for _, tls in inbox.senders} == {TLS_VERSION}, "the envelope too"
    assert await deliveries(client) == [("DELIVERED", None)]


UNTRUSTED = "UntrustedMailServer: the certificate of the mail server {host}:{port} does not "
OURS = "verify against the CAs in GRAPHQL_API_SMTP_CA_FILE ({ca}): certificate verify failed: "
NOT_OURS = "unable to get local issuer certificate; nothing was sent"


@pytest.mark.parametrize(
    ("mode", "signer", "trusted", "host", "reason"),
    [
        pytest.param("TLS", "another", "ours", LOOPBACK, UNTRUSTED + OURS + NOT_OURS, id="TLS"),
        pytest.param(
            "STARTTLS", "another", "ours", LOOPBACK, UNTRUSTED + OURS + NOT_OURS, id="STARTTLS"
        ),
        pytest.param(
            "TLS",
            "ours",
            None,
            LOOPBACK,
            UNTRUSTED + "verify against the system's CAs (GRAPHQL_API_SMTP_CA_FILE is unset): "
            "certificate verify failed: " + NOT_OURS,
            id="TLS, system CAs",
        ),
        pytest.param(
            "STARTTLS",
            "ours",
            "ours",
            "localhost",
            UNTRUSTED + OURS + "Hostname mismatch, certificate is not valid for 'localhost'; "
            "nothing was sent",
            id="STARTTLS, another host's certificate",
        ),
        pytest.param(
            "STARTTLS",
            None,
            "ours",
            LOOPBACK,
            "SMTPException: SMTP STARTTLS extension not supported by server.",
            id="STARTTLS, plain",
        ),
    ],
)
async def test_a_mail_that_cannot_go_out_verified_goes_out_not_at_all(
    mode: str,
    host: str,
    reason: str,
    setup: Any,
    smtp: Any,
    authorities: dict[str, Authority],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A certificate that does not verify (signed by a CA not trusted, or for another name),
    or a server that offers no STARTTLS, fails the attempt (retried later) before the first
    command that reveals a mail, saying why."""
    app, client, group = setup
    inbox, server = smtp
    reason = reason.format(host=host, port=server.port, ca=authorities["ours"].ca_file)
    await add_members(client, group, await contacts(client, *PEOPLE))
    with caplog.at_level(logging.WARNING, logger="graphql_api.worker"):
        await make_worker(app).run_once()
    assert await deliveries(client) == [("FAILED", reason)]
    [logged] = [r.getMessage() for r in caplog.records if r.name == "graphql_api.worker"]
    assert logged == f"delivery 1 to email_notifications failed (attempt 1): {reason}"
    assert inbox.senders == [] and inbox.messages == [], "nothing in clear, not even a sender"


@pytest.mark.parametrize("signer", ["another"])
@pytest.mark.parametrize("mode", ["TLS", "STARTTLS"])
async def test_once_the_certificate_verifies_the_retry_delivers_every_mail(
    mode: str, setup: Any, smtp: Any, authorities: dict[str, Authority]
) -> None:
    app, client, group = setup
    inbox, server = smtp
    await add_members(client, group, await contacts(client, *PEOPLE))
    await make_worker(app).run_once()
    assert [status for status, _ in await deliveries(client)] == ["FAILED"]

    server.stop()  # the relay gets a certificate of the CA the plugin trusts
    server.options = server_options(mode, authorities["ours"])
    server.start()
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == ADDRESSES, "each once, none lost"
    assert inbox.tls == [TLS_VERSION] * 2
    assert await deliveries(client) == [("DELIVERED", None)]


def not_pem(folder: Path) -> Path:
    path = folder / "not-a-bundle.pem"
    path.write_text("not a certificate\n")
    return path


BOTH_MODES = "GRAPHQL_API_SMTP_STARTTLS and GRAPHQL_API_SMTP_TLS are both true"
BAD_SETTINGS = [
    pytest.param({"STARTTLS": "true", "TLS": "true"}, BOTH_MODES, id="both"),
    pytest.param(
        {"TLS": "true", "CA_FILE": "{folder}/missing.pem"},
        "GRAPHQL_API_SMTP_CA_FILE: cannot read CA certificates from {folder}/missing.pem: "
        "[Errno 2] No such file or directory",
        id="CA file missing",
    ),
    pytest.param(
        {"STARTTLS": "true", "CA_FILE": "{folder}/not-a-bundle.pem"},
        "GRAPHQL_API_SMTP_CA_FILE: cannot read CA certificates from {folder}/not-a-bundle.pem: "
        "[X509: NO_CERTIFICATE_OR_CRL_FOUND]",
        id="CA file without a certificate",
    ),
    pytest.param(
        {"CA_FILE": "{ca}"},
        "GRAPHQL_API_SMTP_CA_FILE is set, but mail would go in clear",
        id="CA file in clear",
    ),
]


@pytest.mark.parametrize(("settings", "said"), BAD_SETTINGS)
def test_bad_tls_settings_stop_a_strict_start_in_one_line(
    settings: dict[str, str], said: str, tmp_path: Path, authorities: dict[str, Authority]
) -> None:
    not_pem(tmp_path)
    places = {"folder": tmp_path, "ca": authorities["ours"].ca_file}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GRAPHQL_API_SMTP_")},
        "GRAPHQL_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never-made.sqlite3'}",
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_PLUGINS": "email_notifications",
        "GRAPHQL_API_STRICT_PLUGINS": "true",
        **{f"GRAPHQL_API_SMTP_{k}": v.format(**places) for k, v in settings.items()},
    }
    served = cli(env, "serve", "--port", "1")  # refused before it would try to listen
    assert served.returncode == 1, served.stderr
    [line] = served.stderr.splitlines()
    assert line.startswith("error: plugin 'email_notifications' failed: "), line
    assert said.format(**places) in line, line


async def test_without_strict_mode_bad_settings_leave_the_plugin_out_saying_why(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHQL_API_SMTP_STARTTLS", "true")
    monkeypatch.setenv("GRAPHQL_API_SMTP_TLS", "true")
    app = app_factory(plugins=[graphql_api_email_notifications], strict_plugins=False)
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        data = await GraphQLClient(http, token).data("{ plugins { name error } }")
    [plugin] = [p for p in data["plugins"] if p["name"] == "email_notifications"]
    assert plugin["error"].startswith(f"ValueError: {BOTH_MODES}: set only STARTTLS ")
    assert "\n" not in plugin["error"]
