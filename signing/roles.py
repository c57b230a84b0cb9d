"""The parties that sign documents in a registration dossier."""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    APPLICANT = "applicant"
    AUDIT_FIRM = "audit_firm"
    AUDITOR = "auditor"
    COMMISSION = "commission"
    AGENCY = "agency"

    @property
    def dutch(self) -> str:
        return _DUTCH[self]


_DUTCH = {
    Role.APPLICANT: "aanvrager",
    Role.AUDIT_FIRM: "auditbureau",
    Role.AUDITOR: "auditor",
    Role.COMMISSION: "auditcommissie",
    Role.AGENCY: "Agentschap Innoveren & Ondernemen",
}
