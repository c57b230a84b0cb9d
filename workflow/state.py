"""A dossier's state, derived from its ledger.

Every event the tracker records carries the state it leads to (``payload["state"]``), so the
current state is the last event's, and the history alone rebuilds it anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .ledger import Event
from .steps import Cycle, Phase


@dataclass(frozen=True)
class Deadline:
    name: str
    due: str  # ISO date: the latest day
    opens: str | None = None  # ISO date: the earliest day, where there is one
    description: str = ""


@dataclass(frozen=True)
class Disclosure:
    """An involvement the applicant declared in its sworn statement (misuse of the
    kmo-portefeuille or a bankruptcy): a disclosure the audit and the commission must address."""

    text: str
    declared_on: str  # ISO date of the sworn statement
    application_id: str


@dataclass(frozen=True)
class Proposal:
    """The result an audit report proposes for one requirement (``workflow.norm.proposed_result``)."""

    result: str
    deliberable: bool = False
    below_passing: tuple[str, ...] = ()


@dataclass(frozen=True)
class DossierState:
    phase: Phase = Phase.AWAITING_APPLICATION
    cycle: Cycle = Cycle.INITIAL
    first_time: bool | None = None
    knowledge_test_passed: bool = False
    visit_date: str | None = None  # of the current cycle
    initial_visit_date: str | None = None
    decision_date: str | None = None
    outcome: str | None = None
    failed_requirements: tuple[str, ...] = ()
    in_scope: tuple[str, ...] = ()
    registration_number: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    deadlines: tuple[Deadline, ...] = ()
    documents: dict[str, str] = field(default_factory=dict)  # kind -> key of its latest recorded document
    disclosure: Disclosure | None = None
    proposals: dict[str, Proposal] = field(default_factory=dict)  # of the current cycle's audit report

    def document_facts(self) -> dict[str, Any]:
        """What the dossier tells the documents made after the sworn statement (their render
        context's ``dossier``); empty when there is nothing to tell."""
        if self.disclosure is None:
            return {}
        return {"disclosure": asdict(self.disclosure)}

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["phase"] = self.phase.value
        result["cycle"] = self.cycle.value
        result["failed_requirements"] = list(self.failed_requirements)
        result["in_scope"] = list(self.in_scope)
        result["deadlines"] = [asdict(d) for d in self.deadlines]
        result["proposals"] = {r: {**asdict(p), "below_passing": list(p.below_passing)}
                               for r, p in self.proposals.items()}
        return result

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DossierState:
        return cls(
            **{
                **raw,
                "phase": Phase(raw["phase"]),
                "cycle": Cycle(raw["cycle"]),
                "failed_requirements": tuple(raw["failed_requirements"]),
                "in_scope": tuple(raw["in_scope"]),
                "deadlines": tuple(Deadline(**d) for d in raw["deadlines"]),
                "documents": dict(raw["documents"]),
                "disclosure": None if raw.get("disclosure") is None else Disclosure(**raw["disclosure"]),
                "proposals": {r: Proposal(p["result"], p["deliberable"], tuple(p["below_passing"]))
                              for r, p in raw.get("proposals", {}).items()},
            }
        )

    def with_changes(self, **changes: Any) -> DossierState:
        return replace(self, **changes)


def current_state(history: list[Event]) -> DossierState:
    for event in reversed(history):
        state = event.payload.get("state")
        if state is not None:
            return DossierState.from_dict(state)
    return DossierState()
