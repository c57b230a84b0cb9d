"""Webhooks go to public addresses only: checked at submission and again at delivery, delivered
to the address that was checked, never redirected.

The resolver is injected, so a name can answer a public address when the job is submitted and
a loopback one when the webhook is delivered (DNS rebinding); the receivers are real HTTP
servers on 127.0.0.1, which the allow-list (``KMOP_WEBHOOK_ALLOWED_NETWORKS``) must name before
anything is delivered to them.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.callbacks import DELIVERIES_PREFIX
from api.webhook_targets import (
    WebhookTargetRefused,
    WebhookTargets,
    WebhookTargetUnresolved,
    allowed_networks,
    numeric_host,
)
from api.webhooks import WebhookDeliveryFailed, deliver
from kmop.demo import example_applicant
from kmop.scenario import dossier_steps
from kmop.settings import SettingsError
from storage.local import LocalFolderStore
from tests.support.in_process_api import SERVICE, WEBHOOK_SECRET, call, in_process_app

PUBLIC = "93.184.215.14"
LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)

# What the issue found accepted, and their relatives: (URL, what the refusal says).
REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://localhost:6379/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0177.0.0.1/", "not a URL"),  # httpx refuses the octal form itself
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://[64:ff9b::a00:1]/", "private"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "not a globally routable"),
    ("http://[fd00::1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://user:password@hooks.example/", "user name or password"),
    ("http://hooks.example:99999/", "port 99999"),
    ("http://hooks.example:0/", "port 0"),
    ("ftp://hooks.example/", "http or https"),
    ("/hooks", "http or https"),
]


class Resolver:
    """Answers from a table that a test may change between calls; counts the questions."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = {"hooks.example": [PUBLIC], "localhost": ["127.0.0.1", "::1"], **answers}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise WebhookTargetUnresolved(f"{host} does not resolve")
        return list(self.answers[host])


@pytest.mark.parametrize("url, why", REFUSED)
def test_internal_addresses_odd_spellings_credentials_and_bad_ports_are_refused(url: str, why: str) -> None:
    with pytest.raises(WebhookTargetRefused, match=why):
        WebhookTargets(resolve=Resolver()).target(url)


def test_odd_numeric_spellings_are_read_as_the_address_they_spell() -> None:
    for spelling in ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "0x7f000001"):
        assert numeric_host(spelling) == ipaddress.IPv4Address("127.0.0.1"), spelling
    assert numeric_host("hooks.example") is None and numeric_host("deadbeef") is None


def test_a_public_name_is_accepted_and_connected_to_by_the_address_checked() -> None:
    target = WebhookTargets(resolve=Resolver()).target("https://hooks.example:8443/kmop?x=1")
    assert str(target.connect_url) == f"https://{PUBLIC}:8443/kmop?x=1"
    assert (target.host_header, target.server_name) == ("hooks.example:8443", "hooks.example")


def test_a_name_is_refused_when_any_of_its_addresses_is_internal() -> None:
    resolver = Resolver(**{"hooks.example": [PUBLIC, "10.1.2.3"]})
    with pytest.raises(WebhookTargetRefused, match="hooks.example resolves to 10.1.2.3"):
        WebhookTargets(resolve=resolver).target("https://hooks.example/")


def test_the_allow_list_admits_the_networks_it_names_and_no_others() -> None:
    targets = WebhookTargets(allowed_networks({"KMOP_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32, 10.20.0.0/16"}),
                             Resolver())
    assert str(targets.target("http://127.0.0.1:8080/").address) == "127.0.0.1"
    assert str(targets.target("http://[::ffff:10.20.3.4]/").address) == "::ffff:a14:304"
    for url in ("http://127.0.0.2/", "http://10.21.0.1/", "http://[::1]/"):
        with pytest.raises(WebhookTargetRefused):
            targets.target(url)
    with pytest.raises(SettingsError, match="KMOP_WEBHOOK_ALLOWED_NETWORKS"):
        allowed_networks({"KMOP_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.1/8"})


# --- submission: POST /jobs ----------------------------------------------------------------------

def _sworn_statement(dossier_id: str) -> dict[str, Any]:
    applicant = example_applicant()
    applicant["dossier_id"] = dossier_id
    return next(s for s in dossier_steps(applicant) if getattr(s, "kind", None) == "sworn_statement").to_message()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://localhost:6379/", "http://127.1/",
                                 "http://2130706433/", "http://[::1]/", "http://10.0.0.1/",
                                 "http://user:password@hooks.example/", "http://hooks.example:99999/"])
def test_post_jobs_refuses_each_webhook_url_the_issue_found_accepted(tmp_path: Path, url: str) -> None:
    app = in_process_app(tmp_path, WebhookTargets(resolve=Resolver()))
    answer = call(app, "POST", "/jobs", json=_sworn_statement("D-HOOK-1"),
                  headers={"Authorization": f"Bearer {SERVICE}", "Idempotency-Key": uuid.uuid4().hex,
                           "Webhook-URL": url})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "Webhook-URL" and answer.json()["reason"]


# --- delivery ------------------------------------------------------------------------------------

@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each request; answers ``status`` (with
    ``Location`` when it redirects)."""

    status: int = 204
    location: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append({"method": self.command, "path": self.path, "host": self.headers["Host"],
                                          "body": self.rfile.read(length)})
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.server.shutdown()
        receiver.server.server_close()


def _event() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": "job.completed", "created_at": "2026-12-08T00:00:00+00:00",
            "data": {"job_id": str(uuid.uuid4()), "dossier_id": "D-HOOK-9", "kind": "sworn_statement"}}


def _attempts(store: LocalFolderStore) -> list[dict[str, Any]]:
    return [json.loads(store.get(key)) for key in store.list(DELIVERIES_PREFIX)]


def test_dns_rebinding_between_submission_and_delivery_is_refused_at_delivery(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver())
    url = f"http://hooks.example:{receiver.port}/kmop"
    resolver = Resolver()
    targets = WebhookTargets(resolve=resolver)
    assert str(targets.target(url).address) == PUBLIC  # as POST /jobs checks it
    resolver.answers["hooks.example"] = ["127.0.0.1"]  # the name now points inside
    store = LocalFolderStore(tmp_path / "store")
    deliver(url, _event(), store=store, secret=WEBHOOK_SECRET, targets=targets)  # refused: not retried
    assert receiver.requests == []
    [attempt] = _attempts(store)
    assert attempt["ok"] is False and "127.0.0.1 is a loopback address" in attempt["error"]
    assert resolver.asked == ["hooks.example", "hooks.example"]


def test_delivery_connects_to_the_address_it_checked_without_resolving_again(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver())
    url = f"http://hooks.example:{receiver.port}/kmop"  # a name the machine's own DNS does not know
    resolver = Resolver(**{"hooks.example": ["127.0.0.1"]})
    store = LocalFolderStore(tmp_path / "store")
    deliver(url, _event(), store=store, secret=WEBHOOK_SECRET, targets=WebhookTargets(LOOPBACK_ONLY, resolver))
    [request] = receiver.requests
    assert (request["method"], request["path"], request["host"]) == ("POST", "/kmop", f"hooks.example:{receiver.port}")
    assert resolver.asked == ["hooks.example"]
    assert [a["ok"] for a in _attempts(store)] == [True]


def test_a_redirect_is_not_followed(tmp_path: Path, receivers: list[Receiver]) -> None:
    receivers.append(elsewhere := Receiver())
    receivers.append(redirecting := Receiver(status=307, location=f"http://127.0.0.1:{elsewhere.port}/inside"))
    store = LocalFolderStore(tmp_path / "store")
    with pytest.raises(WebhookDeliveryFailed, match="307"):
        deliver(f"http://127.0.0.1:{redirecting.port}/kmop", _event(), store=store, secret=WEBHOOK_SECRET,
                targets=WebhookTargets(LOOPBACK_ONLY, Resolver()))
    assert len(redirecting.requests) == 1 and elsewhere.requests == []
    [attempt] = _attempts(store)
    assert attempt["status_code"] == 307 and "not followed" in attempt["error"]


def test_a_loopback_receiver_gets_nothing_without_the_allow_list(tmp_path: Path, receivers: list[Receiver]) -> None:
    receivers.append(receiver := Receiver())
    store = LocalFolderStore(tmp_path / "store")
    deliver(f"http://127.0.0.1:{receiver.port}/kmop", _event(), store=store, secret=WEBHOOK_SECRET,
            targets=WebhookTargets(resolve=Resolver()))
    assert receiver.requests == []
    assert "refused" in _attempts(store)[0]["error"]


def test_a_name_that_does_not_resolve_at_delivery_is_retried(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    with pytest.raises(WebhookDeliveryFailed, match="does not resolve"):
        deliver("https://gone.example/kmop", _event(), store=store, secret=WEBHOOK_SECRET,
                targets=WebhookTargets(resolve=Resolver()))
