"""The state tracker: one place that decides whether a transition is allowed, one that records it.

``check`` answers before a document is signed (a quote before a signed sworn statement is
refused with nothing signed, stored or recorded); ``record`` decides again on the exact history
it appends to, inside the ledger's conditional create, so two workers racing for the same
transition cannot both win.
A refused transition changes nothing and says which step is expected next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from kmop.errors import StepOutOfOrder
from signing.roles import Role

from . import rules
from .ledger import Event, Ledger
from .state import DossierState, current_state
from .steps import FACTS, KNOWLEDGE_TEST_PASSED, Phase, Transition, transitions_from

DOCUMENT_STORED = "document_stored"


@dataclass(frozen=True)
class Expected:
    action: str
    role: Role
    description: str

    def __str__(self) -> str:
        return f"{self.action} (by {self.role.value})"


def _available(state: DossierState) -> list[Transition]:
    return [
        t for t in transitions_from(state.phase, state.cycle)
        if not (t.action == KNOWLEDGE_TEST_PASSED and state.knowledge_test_passed)
    ]


def expected_next(state: DossierState) -> list[Expected]:
    return [Expected(t.action, t.role, t.description) for t in _available(state)]


class Tracker:
    def __init__(self, ledger: Ledger, today: Callable[[], dt.date] = dt.date.today) -> None:
        self.ledger = ledger
        self.today = today

    def history(self, dossier_id: str) -> list[Event]:
        return self.ledger.history(dossier_id)

    def recent_history(self, dossier_id: str) -> list[Event]:
        """The history as far as known here, for deciding an append (``Ledger.recent_history``):
        it may lack the latest events, so a refusal on it must be checked on ``history``."""
        return self.ledger.recent_history(dossier_id)

    def state(self, dossier_id: str) -> DossierState:
        return current_state(self.ledger.history(dossier_id))

    def expected(self, dossier_id: str) -> list[Expected]:
        return expected_next(self.state(dossier_id))

    def find(self, dossier_id: str, idempotency_key: str) -> Event | None:
        return self.ledger.find(dossier_id, idempotency_key)

    def documents_recorded(self, dossier_id: str, kind: str, history: list[Event] | None = None) -> int:
        events = self.history(dossier_id) if history is None else history
        return sum(1 for e in events if e.type == DOCUMENT_STORED and e.payload["kind"] == kind)

    def lock(self, dossier_id: str) -> AbstractContextManager[object]:
        """The dossier's mutex (a no-op without Redis); see ``workflow.ledger.Ledger``."""
        return self.ledger.lock(dossier_id)

    def check(
        self, dossier_id: str, action: str, role: Role, data: dict[str, Any], history: list[Event] | None = None
    ) -> DossierState:
        """The state the action would lead to; raises ``StepOutOfOrder`` or ``InvalidJob``.

        ``history`` spares a read when the caller has just read it; ``record_*`` decide again
        on the history they append to, so a stale snapshot here can only refuse early.
        """
        events = self.history(dossier_id) if history is None else history
        return self._decide(current_state(events), dossier_id, action, role, data)

    def record_document(
        self,
        dossier_id: str,
        kind: str,
        role: Role,
        data: dict[str, Any],
        idempotency_key: str,
        document: dict[str, Any],
        known: list[Event] | None = None,
    ) -> tuple[Event, bool]:
        """Record a stored document (``document``: kind, step, key, sha256, size) and its transition.

        ``known``: the history as the caller just read it (see ``Ledger.append``)."""

        def payload(history: list[Event]) -> dict[str, Any]:
            state = current_state(history)
            after = self._decide(state, dossier_id, kind, role, data)
            documents = {**after.documents, kind: document["key"]}
            named = parties(data)
            return {**document, "action": kind, "from": state.phase.value,
                    "state": after.with_changes(documents=documents).to_dict(),
                    **({"parties": named} if named else {})}

        return self.ledger.append(dossier_id, DOCUMENT_STORED, idempotency_key, role.value, payload, known)

    def record_fact(
        self, dossier_id: str, fact: str, role: Role, data: dict[str, Any], idempotency_key: str
    ) -> tuple[Event, bool]:
        """Record a fact without a document (the knowledge test passed, the audit visit held)."""
        if fact not in FACTS:
            raise StepOutOfOrder(f"unknown fact {fact!r}; known: {', '.join(FACTS)}")

        def payload(history: list[Event]) -> dict[str, Any]:
            state = current_state(history)
            after = self._decide(state, dossier_id, fact, role, data)
            return {"action": fact, "data": data, "from": state.phase.value, "state": after.to_dict()}

        return self.ledger.append(dossier_id, fact, idempotency_key, role.value, payload)

    def _decide(
        self, state: DossierState, dossier_id: str, action: str, role: Role, data: dict[str, Any]
    ) -> DossierState:
        transition = next((t for t in _available(state) if t.action == action), None)
        if transition is None:
            raise StepOutOfOrder(_refusal(dossier_id, state, action))
        if role is not transition.role:
            raise StepOutOfOrder(
                f"dossier {dossier_id}: {action} is made by {transition.role.value}, not by {role.value}"
            )
        return rules.apply(transition, state, data, self.today())


def parties(data: dict[str, Any]) -> dict[str, str]:
    """Who a document names (the provider's name and enterprise number, the audit firm), kept in
    its ledger event so that the dossiers can be found by them without opening any document."""
    provider = data.get("provider") if isinstance(data.get("provider"), dict) else {}
    firm = data.get("audit_firm") if isinstance(data.get("audit_firm"), dict) else {}
    named = {"provider_name": provider.get("name"), "enterprise_number": provider.get("enterprise_number"),
             "audit_firm": firm.get("name")}
    return {name: value for name, value in named.items() if isinstance(value, str) and value}


def _refusal(dossier_id: str, state: DossierState, action: str) -> str:
    expected = expected_next(state)
    if state.phase.final:
        return f"dossier {dossier_id} is closed ({state.phase.value}); {action} is not accepted"
    listing = ", ".join(str(e) for e in expected) or "nothing"
    return (
        f"dossier {dossier_id} is at {state.phase.value} ({state.cycle.value} audit); "
        f"{action} is not allowed now; expected next: {listing}"
    )


__all__ = ["DOCUMENT_STORED", "Expected", "Phase", "Tracker", "expected_next"]
