"""Registration numbers from a durable sequence: ``DV.`` + ``O``/``A`` + 6 digits, one dossier each.

A number is taken by a conditional create of its record
(``registration-numbers/<letter>/<number>.json``, naming the dossier), so two certificates issued
at once cannot both take it: the one that loses the create moves on to the next number. The
dossier then records the number it holds (``dossiers/<id>/registration/<service>.json``, another
conditional create), which makes the allocation idempotent: a redelivered job, a second
certificate after a follow-up audit and a twin racing for the same dossier all read the number
the dossier holds.

The next free number is found without listing the bucket. Numbers are taken from the bottom up,
so the taken ones form a run from the first number; a galloping search with HEAD requests finds
its end in about 2 log2(n) requests, and a process remembers where it last took one. A number
taken out of that order (a producer that names its own) can only make the search land on a
later free number: it never lets two dossiers hold one number.

What can be lost is a number, never uniqueness: a process that dies between taking a number and
recording it in the dossier, or a twin that loses the dossier's record to its sibling, leaves a
number held by the dossier and printed nowhere.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

from kmop.errors import InvalidJob, ObjectExists, StorageError
from storage.base import DocumentStore
from storage.keys import dossier_registration_key, registration_letter, registration_number_key

#: The document kind that carries a registration number (taken when its job names none).
NUMBERED_KIND = "registration_certificate"
#: The largest number the format (6 digits) can carry.
LAST_NUMBER = 999_999
_FORMAT = re.compile(r"^DV\.([OA])([0-9]{6})$")
_RECORD_TYPE = "application/json"


class RegistrationNumbersExhausted(StorageError):
    """Every number of a service's sequence is taken."""


@dataclass(frozen=True)
class RegistrationNumber:
    service: str
    number: int

    def __str__(self) -> str:
        return f"DV.{registration_letter(self.service)}{self.number:06d}"


def parse_registration_number(value: str, service: str, field: str) -> RegistrationNumber:
    """``value`` (``DV.O000123``) as a number of ``service``; ``InvalidJob`` naming ``field`` otherwise."""
    match = _FORMAT.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match.group(2)) == 0:
        raise InvalidJob(field, "must be DV. followed by O or A and six digits, not all zero")
    if match.group(1) != registration_letter(service):
        raise InvalidJob(field, f"a registration for {service} carries the letter {registration_letter(service)}")
    return RegistrationNumber(service, int(match.group(2)))


class RegistrationNumbers:
    """Hands each dossier one registration number per service, from a sequence kept in ``store``.

    :param store: where the numbers' and the dossiers' records are created (never overwritten).
    :param first: the sequence's first number (a deployment continuing an existing register
        starts past its last number).
    """

    def __init__(self, store: DocumentStore, first: int = 1) -> None:
        if not 1 <= first <= LAST_NUMBER:
            raise ValueError(f"first registration number must be 1..{LAST_NUMBER}, not {first}")
        self.store = store
        self.first = first
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def number_for(self, dossier_id: str, service: str) -> RegistrationNumber:
        """The number the dossier holds for ``service``, taking the next free one if it holds none."""
        held = self.held_by(dossier_id, service)
        if held is not None:
            return held
        number = self._take_next(dossier_id, service)
        return self._record(dossier_id, number)

    def claim(self, dossier_id: str, value: str, service: str,
              field: str = "data.registration_number") -> RegistrationNumber:
        """Has the dossier hold the number a producer named; ``InvalidJob`` when another holds it."""
        wanted = parse_registration_number(value, service, field)
        held = self.held_by(dossier_id, service)
        if held is not None:
            if held != wanted:
                raise InvalidJob(field, f"dossier {dossier_id} holds registration number {held}, not {wanted}")
            return held
        if not self._take(dossier_id, wanted):
            raise InvalidJob(field, f"registration number {wanted} is held by another dossier")
        recorded = self._record(dossier_id, wanted)
        if recorded != wanted:
            raise InvalidJob(field, f"dossier {dossier_id} holds registration number {recorded}, not {wanted}")
        return recorded

    def held_by(self, dossier_id: str, service: str) -> RegistrationNumber | None:
        """The number the dossier holds for ``service``, or None."""
        key = dossier_registration_key(dossier_id, service)
        if self.store.head(key) is None:
            return None
        record = json.loads(self.store.get(key))
        return RegistrationNumber(service, int(record["number"]))

    def holder(self, number: RegistrationNumber) -> str | None:
        """The dossier that took ``number``, or None while it is free."""
        key = registration_number_key(number.service, number.number)
        if self.store.head(key) is None:
            return None
        return str(json.loads(self.store.get(key))["dossier_id"])

    # -- taking a number ------------------------------------------------------------------

    def _take_next(self, dossier_id: str, service: str) -> RegistrationNumber:
        candidate = self._first_free(service)
        while candidate <= LAST_NUMBER:
            number = RegistrationNumber(service, candidate)
            if self._take(dossier_id, number):
                with self._lock:
                    self._next[service] = max(self._next.get(service, 0), candidate + 1)
                return number
            candidate += 1  # taken by a racing issue since the search saw it free
        raise RegistrationNumbersExhausted(f"every registration number of {service} up to {LAST_NUMBER} is taken")

    def _take(self, dossier_id: str, number: RegistrationNumber) -> bool:
        """Creates the number's record for the dossier; False when another dossier holds it."""
        key = registration_number_key(number.service, number.number)
        body = json.dumps({"registration_number": str(number), "dossier_id": dossier_id}).encode()
        try:
            self.store.put_once(key, body, _RECORD_TYPE)
            return True
        except ObjectExists:
            return self.holder(number) == dossier_id  # this dossier took it before it died

    def _record(self, dossier_id: str, number: RegistrationNumber) -> RegistrationNumber:
        """Records the dossier's number; the number a racing twin recorded first wins."""
        key = dossier_registration_key(dossier_id, number.service)
        body = json.dumps({"registration_number": str(number), "number": number.number}).encode()
        try:
            self.store.put_once(key, body, _RECORD_TYPE)
            return number
        except ObjectExists:
            held = self.held_by(dossier_id, number.service)
            assert held is not None
            return held

    def _first_free(self, service: str) -> int:
        """The lowest number after the run of taken numbers that starts at the first one."""
        with self._lock:
            taken_below = self._next.get(service, self.first) - 1  # every number up to it is taken
        if not self._taken(service, taken_below + 1):
            return taken_below + 1
        step, low = 1, taken_below + 1  # low is taken
        while True:
            high = min(low + step, LAST_NUMBER + 1)
            if high > LAST_NUMBER or not self._taken(service, high):
                break
            low, step = high, step * 2
        while high - low > 1:  # low taken, high free (or past the end)
            middle = (low + high) // 2
            if self._taken(service, middle):
                low = middle
            else:
                high = middle
        return high

    def _taken(self, service: str, number: int) -> bool:
        return self.store.head(registration_number_key(service, number)) is not None
