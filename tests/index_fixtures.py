"""Fixtures of the dossier index's tests: a database of each kind, owned by one test, and
dossiers made through the real tracker.

PostgreSQL runs on 127.0.0.1:5432 with trust authentication (scripts/test.sh starts it); each
test gets a database ``kmop_idx_<random>`` of its own, dropped after it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select

from index.database import dispose, migrate
from index.observer import attach
from index.schema import deadlines, dossiers, events
from kmop.demo import example_applicant
from kmop.jobs import DocumentJob
from kmop.scenario import Fact, Step, dossier_steps
from storage.base import DocumentStore
from workflow.ledger import Ledger
from workflow.tracker import Tracker

PG_HOST = os.environ.get("KMOP_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KMOP_TEST_PG_PORT", "5432"))


@functools.cache
def pg_user() -> str:
    """The first of postgres and root that the server lets in."""
    for user in ("postgres", "root"):
        try:
            with psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="test", connect_timeout=5):
                return user
        except psycopg.OperationalError:
            continue
    raise RuntimeError(f"PostgreSQL on {PG_HOST}:{PG_PORT} lets in neither postgres nor root (scripts/test.sh starts it)")


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://{pg_user()}@{PG_HOST}:{port}/{database}"


class TcpRelay:
    """A loopback TCP relay to PostgreSQL that can be cut and restored on the same port: the
    database going away mid-run, and coming back, without stopping the server others use."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> TcpRelay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets = []


def _admin(sql: str) -> None:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=pg_user(), dbname="test", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own; its URL."""
    name = f"kmop_idx_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    try:
        yield url
    finally:
        dispose(url)
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The index's database on each kind the project supports."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.sqlite'}"
        yield url
        dispose(url)
    else:
        yield request.getfixturevalue("pg_database")


def indexed_tracker(store: DocumentStore, url: str | None) -> Tracker:
    """A tracker over ``store`` whose appends are projected into the index at ``url``."""
    ledger = Ledger(store)
    attach(ledger, url)
    return Tracker(ledger)


def numbered(step: Step, number: int = 1) -> Step:
    """A certificate's job with the number the pipeline's sequence would give it."""
    if isinstance(step, DocumentJob) and step.kind == "registration_certificate" \
            and "registration_number" not in step.data:
        letter = "A" if step.data["service"] == "advies" else "O"
        return dataclasses.replace(step, data={**step.data, "registration_number": f"DV.{letter}{number:06d}"})
    return step


def record(tracker: Tracker, step: Step) -> None:
    """Record a step as a worker does (a document's check, then its event)."""
    if isinstance(step, Fact):
        tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
        return
    tracker.check(step.dossier_id, step.kind, step.role, step.data)
    tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                            {"kind": step.kind, "step": step.document_kind.step,
                             "key": f"dossiers/{step.dossier_id}/documents/{step.kind}/{step.idempotency_key}.pdf",
                             "sha256": "0" * 64, "size": 1})


@functools.cache
def _steps(scenario: str) -> tuple[Step, ...]:
    return tuple(dossier_steps(example_applicant(), scenario))


def steps_of(dossier_id: str, scenario: str, provider: str, enterprise_number: str, number: int,
             audit_firm: str | None = None) -> list[Step]:
    """A dossier's steps under its own id, provider and (optionally) audit firm."""
    made = []
    for step in _steps(scenario):
        data = {**step.data}
        if isinstance(data.get("provider"), dict):
            data["provider"] = {**data["provider"], "name": provider, "enterprise_number": enterprise_number}
        if audit_firm is not None and isinstance(data.get("audit_firm"), dict):
            data["audit_firm"] = {**data["audit_firm"], "name": audit_firm}
        made.append(numbered(dataclasses.replace(step, dossier_id=dossier_id, data=data), number))
    return made


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the index, table by table, in key order."""
    with engine.connect() as connection:
        return {table.name: [tuple(row) for row in connection.execute(
            select(table).order_by(*table.primary_key.columns)).all()]
            for table in (events, dossiers, deadlines)}


__all__ = ["TcpRelay", "indexed_tracker", "migrate", "pg_database", "index_url", "record", "rows", "steps_of"]
