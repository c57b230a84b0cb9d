"""The registration procedure as data: phases, and the transitions allowed from each.

A transition is made by an *action*: storing a document of a kind, or recording a fact that
has no document (the knowledge test passed, the audit visit held). Each names who may make it
and the phase it leads to. Decisions lead to the phase their outcome names; see ``tracker``.

Cycles: the initial audit, a follow-up audit after a conditional decision (only the
requirements not passed), an additional audit after a negative one (the failed requirements).
Every cycle runs quote -> acceptance -> preparation pack -> visit -> report -> decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from signing.roles import Role


class Phase(str, Enum):
    AWAITING_APPLICATION = "awaiting_application"
    SUBMITTED = "submitted"
    QUOTED = "quoted"
    QUOTE_ACCEPTED = "quote_accepted"
    PREPARED = "prepared"
    VISITED = "visited"
    REPORTED = "reported"
    DECIDED_POSITIVE = "decided_positive"
    DECIDED_CONDITIONAL = "decided_conditional"
    DECIDED_NEGATIVE = "decided_negative"
    REGISTERED = "registered"
    REGISTERED_CONDITIONAL = "registered_conditional"
    LAPSED = "lapsed"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in (Phase.REGISTERED, Phase.LAPSED, Phase.REJECTED)


class Cycle(str, Enum):
    INITIAL = "initial"
    FOLLOW_UP = "follow_up"
    ADDITIONAL = "additional"


# Facts recorded without a document.
KNOWLEDGE_TEST_PASSED = "knowledge_test_passed"
AUDIT_VISIT_HELD = "audit_visit_held"
FACTS = (KNOWLEDGE_TEST_PASSED, AUDIT_VISIT_HELD)

DECISION_KINDS = ("commission_decision", "follow_up_decision")
REPORT_KINDS = ("audit_report", "follow_up_audit_report")


@dataclass(frozen=True)
class Transition:
    phase: Phase
    action: str  # a document kind or a fact
    role: Role
    to: Phase | None  # None: decided by the outcome of a decision
    cycles: tuple[Cycle, ...] = tuple(Cycle)  # the cycles in which it may be made
    description: str = ""
    starts_cycle: Cycle | None = None


TRANSITIONS: tuple[Transition, ...] = (
    Transition(Phase.AWAITING_APPLICATION, KNOWLEDGE_TEST_PASSED, Role.APPLICANT, Phase.AWAITING_APPLICATION,
               description="the applicant passed the online knowledge test"),
    Transition(Phase.AWAITING_APPLICATION, "sworn_statement", Role.APPLICANT, Phase.SUBMITTED,
               description="the signed sworn statement completes the application"),
    Transition(Phase.SUBMITTED, "quote", Role.AUDIT_FIRM, Phase.QUOTED,
               description="an appointed audit firm quotes the initial audit", starts_cycle=Cycle.INITIAL),
    Transition(Phase.DECIDED_NEGATIVE, "quote", Role.AUDIT_FIRM, Phase.QUOTED, (Cycle.INITIAL,),
               "the audit firm quotes the additional audit", starts_cycle=Cycle.ADDITIONAL),
    Transition(Phase.REGISTERED_CONDITIONAL, "quote", Role.AUDIT_FIRM, Phase.QUOTED, (Cycle.INITIAL,),
               "the audit firm quotes the follow-up audit", starts_cycle=Cycle.FOLLOW_UP),
    Transition(Phase.QUOTED, "quote_acceptance", Role.APPLICANT, Phase.QUOTE_ACCEPTED,
               description="the applicant accepts the quote with its own signature"),
    Transition(Phase.QUOTE_ACCEPTED, "preparation_pack", Role.AUDIT_FIRM, Phase.PREPARED,
               description="the audit firm sends the preparation pack"),
    Transition(Phase.PREPARED, AUDIT_VISIT_HELD, Role.AUDITOR, Phase.VISITED,
               description="the auditor held the audit visit"),
    Transition(Phase.VISITED, "audit_report", Role.AUDITOR, Phase.REPORTED,
               (Cycle.INITIAL,), "the auditor signs the audit report"),
    Transition(Phase.VISITED, "follow_up_audit_report", Role.AUDITOR, Phase.REPORTED,
               (Cycle.FOLLOW_UP, Cycle.ADDITIONAL), "the auditor signs the follow-up audit report"),
    Transition(Phase.REPORTED, "commission_decision", Role.COMMISSION, None,
               (Cycle.INITIAL,), "the audit commission decides on the report"),
    Transition(Phase.REPORTED, "follow_up_decision", Role.COMMISSION, None,
               (Cycle.FOLLOW_UP, Cycle.ADDITIONAL), "the audit commission decides on the follow-up report"),
    Transition(Phase.DECIDED_POSITIVE, "registration_certificate", Role.AGENCY, Phase.REGISTERED,
               description="the agency issues the registration certificate"),
    Transition(Phase.DECIDED_CONDITIONAL, "registration_certificate", Role.AGENCY, Phase.REGISTERED_CONDITIONAL,
               description="the agency issues a conditional registration certificate"),
)


def transitions_from(phase: Phase, cycle: Cycle) -> list[Transition]:
    return [t for t in TRANSITIONS if t.phase is phase and cycle in t.cycles]

