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

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["phase"] = self.phase.value
        result["cycle"] = self.cycle.value
        result["failed_requirements"] = list(self.failed_requirements)
        result["in_scope"] = list(self.in_scope)
        result["deadlines"] = [asdict(d) for d in self.deadlines]
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
