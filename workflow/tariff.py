"""The audit tariff: price and duration of a kmop audit from the agency's time table.

The agency fixes price and duration: EUR 150 per hour times the hours its time table
("tijdrooster") sets for the provider's structure and the services applied for (S4). The table
itself was not found, so the hours are our assumption (docs/domain.md, section D). Both
live in data, one file per version: ``tariff_data/tariff-<version>.json`` with the date it takes
effect, its sources and its assumptions. The official table replaces it as a new file; nothing
here needs to change.

``compute_quote`` picks the version in effect on the quote date and returns every line of the
computation with the table row it came from; ``QuoteComputation.explain()`` prints it.
Bad inputs raise ``InvalidJob`` naming the field (``inputs.people``, ``on``, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kmop.errors import InvalidJob, KmopError

TARIFF_DATA_DIR = Path(__file__).resolve().parent / "tariff_data"
_FILE_NAME = re.compile(r"^tariff-(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,39})\.json$")
_CENT = Decimal("0.01")
_BRUSSELS = ZoneInfo("Europe/Brussels")
_INPUTS = ("audit_kind", "services", "belgian_sites", "foreign_sites", "people",
           "requirements_in_scope", "exempt_requirements")
SCOPE_ALL = "all"
SCOPE_LISTED = "listed"


class TariffDataError(KmopError):
    """A tariff data file that cannot be used as it is (a configuration error, not a job error)."""


@dataclass(frozen=True)
class StructureClass:
    id: str
    label: str
    people: tuple[int, int | None]
    belgian_sites: tuple[int, int | None]
    included_belgian_sites: int
    hours: dict[str, Decimal]
    source: str

    def matches(self, people: int, belgian_sites: int) -> bool:
        return _within(people, self.people) and _within(belgian_sites, self.belgian_sites)


@dataclass(frozen=True)
class HoursRule:
    """Hours per component added once per unit (per additional service, per extra site)."""

    key: str
    label: str
    hours: dict[str, Decimal]
    source: str


@dataclass(frozen=True)
class Tariff:
    version: str
    effective_from: dt.date
    title: str
    currency: str
    sources: tuple[dict[str, str], ...]
    assumption: str
    hourly_rate: Decimal
    hourly_rate_source: str
    vat_rate: Decimal
    vat_source: str
    hours_per_day: Decimal
    hours_step: Decimal
    visit_days_step: Decimal
    components: tuple[tuple[str, str], ...]
    visit_component: str
    services: tuple[str, ...]
    structure_classes: tuple[StructureClass, ...]
    per_additional_service: HoursRule
    per_extra_belgian_site: HoursRule
    audit_kinds: dict[str, tuple[str, str]]
    requirement_share: dict[str, Decimal]
    minimum_hours: dict[str, Decimal]
    scope_rule: str
    scope_rule_source: str
    travel_rule: str
    travel_label: str
    travel_text: str
    travel_source: str
    notes: tuple[str, ...]
    calibration_inputs: dict[str, Any]
    calibration_hours: Decimal
    calibration_text: str

    def component_label(self, component: str) -> str:
        return dict(self.components)[component]

    def structure_class(self, people: int, belgian_sites: int) -> StructureClass:
        for row in self.structure_classes:
            if row.matches(people, belgian_sites):
                return row
        raise InvalidJob("inputs.people", f"no structure class of tariff {self.version} covers "
                                          f"{people} people and {belgian_sites} Belgian sites")


@dataclass(frozen=True)
class QuoteLine:
    """One line of the computation: ``quantity`` units of ``unit_hours`` from one table row.

    ``source`` names the row of the data file (for people who maintain it); ``component_label``
    and ``basis`` say the same in the quote's words (Dutch, for the client).
    """

    component: str
    label: str
    quantity: Decimal
    unit_hours: Decimal
    hours: Decimal
    rate: Decimal
    amount: Decimal
    source: str
    component_label: str = ""
    basis: str = ""


@dataclass(frozen=True)
class TravelCosts:
    """Foreign sites: a separate line, charged at cost, not part of the computed total."""

    foreign_sites: int
    rule: str
    label: str
    text: str
    source: str


@dataclass(frozen=True)
class QuoteComputation:
    tariff_version: str
    tariff_effective_from: dt.date
    on: dt.date
    currency: str
    audit_kind: str
    audit_kind_label: str
    services: tuple[str, ...]
    people: int
    belgian_sites: int
    foreign_sites: int
    structure_class: StructureClass
    requirements_in_scope: tuple[str, ...]
    exempt_requirements: tuple[str, ...]
    scope_share: Decimal
    lines: tuple[QuoteLine, ...]
    hours_by_component: dict[str, Decimal]
    total_hours: Decimal
    visit_hours: Decimal
    visit_days: Decimal
    audit_days: Decimal
    hours_per_day: Decimal
    hourly_rate: Decimal
    subtotal: Decimal
    vat_rate: Decimal
    vat: Decimal
    total: Decimal
    travel: TravelCosts | None
    notes: tuple[str, ...]
    assumption: str
    sources: tuple[dict[str, str], ...]

    def explain(self) -> str:
        """The computation line by line, in plain text."""
        cur = self.currency
        out = [
            f"Tariff {self.tariff_version} (in effect from {self.tariff_effective_from.isoformat()}), "
            f"applied on {self.on.isoformat()}",
            f"Audit: {self.audit_kind}; services: {', '.join(self.services)}; "
            f"{self.people} people delivering the service; {self.belgian_sites} Belgian site(s), "
            f"{self.foreign_sites} foreign site(s)",
            f"Structure class {self.structure_class.id}: {self.structure_class.label} "
            f"({self.structure_class.source})",
            f"Requirements in scope: {', '.join(self.requirements_in_scope)} "
            f"(share {_plain(self.scope_share)})"
            + (f"; exempt: {', '.join(self.exempt_requirements)}" if self.exempt_requirements else ""),
            f"Hourly rate: {cur} {self.hourly_rate}",
            "Lines:",
        ]
        for number, line in enumerate(self.lines, 1):
            out.append(
                f"  {number}. {line.component}: {line.label}: {_plain(line.quantity)} x "
                f"{_plain(line.unit_hours)} h = {_plain(line.hours)} h x {cur} {line.rate} = "
                f"{cur} {line.amount}  [{line.source}]"
            )
        hours = ", ".join(f"{c} {_plain(h)} h" for c, h in self.hours_by_component.items())
        out += [
            f"Hours per component: {hours}",
            f"Total hours: {_plain(self.total_hours)} = {_plain(self.audit_days)} audit day(s) of "
            f"{_plain(self.hours_per_day)} h",
            f"Visit: {_plain(self.visit_hours)} h = {_plain(self.visit_days)} visit day(s) (rounded up)",
            f"Subtotal: {cur} {self.subtotal}",
            f"VAT {_plain(self.vat_rate * 100)}%: {cur} {self.vat}",
            f"Total: {cur} {self.total}",
        ]
        if self.travel is not None:
            out.append(f"Travel costs for {self.travel.foreign_sites} foreign site(s): "
                       f"{self.travel.rule}, not included in the total [{self.travel.source}]")
        out.append(f"Assumption: {self.assumption}")
        return "\n".join(out)


class TariffTable:
    """The tariff versions in a directory, by version and by the date they take effect."""

    def __init__(self, directory: Path = TARIFF_DATA_DIR) -> None:
        self.directory = Path(directory)
        self.tariffs = _load_all(self.directory.resolve())

    @property
    def versions(self) -> list[str]:
        return [t.version for t in self.tariffs]

    def get(self, version: str, field: str = "tariff") -> Tariff:
        for tariff in self.tariffs:
            if tariff.version == version:
                return tariff
        raise InvalidJob(field, f"unknown tariff version {version!r}; known: "
                                f"{', '.join(self.versions) or 'none'}")

    def effective_on(self, day: dt.date, field: str = "on") -> Tariff:
        """The latest version that took effect on or before ``day``."""
        in_effect = [t for t in self.tariffs if t.effective_from <= day]
        if not in_effect:
            raise InvalidJob(field, f"no tariff is in effect on {day.isoformat()} (first: "
                                    f"{self.tariffs[0].effective_from.isoformat() if self.tariffs else 'none'})")
        return in_effect[-1]


@cache
def default_table() -> TariffTable:
    return TariffTable(TARIFF_DATA_DIR)


def compute_quote(
    inputs: Mapping[str, Any],
    tariff: Tariff | str | None = None,
    on: dt.date | str | None = None,
    *,
    table: TariffTable | None = None,
) -> QuoteComputation:
    """Price and duration of an audit.

    ``inputs``: ``audit_kind`` (initial | renewal | follow_up | additional, as the tariff lists),
    ``services`` (list), ``people`` (delivering the service), ``belgian_sites`` (>= 1),
    ``foreign_sites`` (default 0), ``requirements_in_scope`` (required for follow-up and
    additional audits, refused otherwise) and ``exempt_requirements`` (optional).
    ``tariff``: a Tariff or a version; by default the version in effect on ``on`` in ``table``
    (the shipped data files). ``on``: the quote date, default today in Brussels.
    """
    day = _day(on)
    table = table or default_table()
    if tariff is None:
        tariff = table.effective_on(day)
    elif isinstance(tariff, str):
        tariff = table.get(tariff)
    if tariff.effective_from > day:
        raise InvalidJob("on", f"tariff {tariff.version} takes effect on "
                               f"{tariff.effective_from.isoformat()}, after {day.isoformat()}")
    args = _checked_inputs(inputs, tariff)
    return _compute(tariff, day, **args)


def _compute(
    tariff: Tariff,
    day: dt.date,
    *,
    audit_kind: str,
    services: tuple[str, ...],
    people: int,
    belgian_sites: int,
    foreign_sites: int,
    in_scope: tuple[str, ...],
    exempt: tuple[str, ...],
) -> QuoteComputation:
    rate = tariff.hourly_rate
    source = f"tariff {tariff.version}"
    lines: list[QuoteLine] = []

    def add(component: str, label: str, quantity: int | Decimal, unit_hours: Decimal, row: str,
            basis: str | None = None) -> None:
        hours = Decimal(quantity) * unit_hours
        if hours:
            lines.append(QuoteLine(component, f"{tariff.component_label(component)}: {label}",
                                   Decimal(quantity), unit_hours, hours, rate, _money(hours * rate),
                                   f"{source}: {row}", tariff.component_label(component), basis or label))

    row = tariff.structure_class(people, belgian_sites)
    for component, _ in tariff.components:
        add(component, f"structuurklasse {row.id} ({row.label})", 1, row.hours.get(component, Decimal(0)),
            f"structure_classes[{row.id}].hours.{component}", f"structuurklasse {row.id}")
    for rule, count in ((tariff.per_additional_service, len(services) - 1),
                        (tariff.per_extra_belgian_site, max(0, belgian_sites - row.included_belgian_sites))):
        if count > 0:
            for component, _ in tariff.components:
                add(component, f"{count} × {rule.label}", count, rule.hours.get(component, Decimal(0)),
                    f"{rule.key}.hours.{component}")

    share = sum((tariff.requirement_share[r] for r in in_scope), Decimal(0))
    if share < 1:
        for component, _ in tariff.components:
            base = sum((line.hours for line in lines if line.component == component), Decimal(0))
            minimum = tariff.minimum_hours.get(component, Decimal(0))
            scaled = min(base, max(minimum, _round_up(base * share, tariff.hours_step)))
            if scaled != base:
                label = (f"beperking tot de te auditen vereisten ({', '.join(in_scope)}: aandeel "
                         f"{_plain(share * 100).replace('.', ',')} %, minimum {_plain(minimum).replace('.', ',')} uur)")
                lines.append(QuoteLine(
                    component, f"{tariff.component_label(component)}: {label}", Decimal(1),
                    scaled - base, scaled - base, rate, _money((scaled - base) * rate),
                    f"{source}: scope_rule (requirement_share, minimum_hours.{component})",
                    tariff.component_label(component), label))

    by_component = {c: sum((l.hours for l in lines if l.component == c), Decimal(0)) for c, _ in tariff.components}
    total_hours = sum(by_component.values(), Decimal(0))
    visit_hours = by_component.get(tariff.visit_component, Decimal(0))
    subtotal = sum((line.amount for line in lines), Decimal(0)).quantize(_CENT)
    vat = _money(subtotal * tariff.vat_rate)
    travel = None
    if foreign_sites:
        travel = TravelCosts(foreign_sites, tariff.travel_rule, tariff.travel_label, tariff.travel_text,
                             tariff.travel_source)
    return QuoteComputation(
        tariff_version=tariff.version,
        tariff_effective_from=tariff.effective_from,
        on=day,
        currency=tariff.currency,
        audit_kind=audit_kind,
        audit_kind_label=tariff.audit_kinds[audit_kind][0],
        services=services,
        people=people,
        belgian_sites=belgian_sites,
        foreign_sites=foreign_sites,
        structure_class=row,
        requirements_in_scope=in_scope,
        exempt_requirements=exempt,
        scope_share=share,
        lines=tuple(lines),
        hours_by_component=by_component,
        total_hours=total_hours,
        visit_hours=visit_hours,
        visit_days=_round_up(visit_hours / tariff.hours_per_day, tariff.visit_days_step),
        audit_days=_money(total_hours / tariff.hours_per_day),
        hours_per_day=tariff.hours_per_day,
        hourly_rate=rate,
        subtotal=subtotal,
        vat_rate=tariff.vat_rate,
        vat=vat,
        total=subtotal + vat,
        travel=travel,
        notes=tariff.notes,
        assumption=tariff.assumption,
        sources=tariff.sources,
    )


def _checked_inputs(inputs: Any, tariff: Tariff) -> dict[str, Any]:
    if not isinstance(inputs, Mapping):
        raise InvalidJob("inputs", "must be a mapping of tariff inputs")
    for name in inputs:
        if name not in _INPUTS:
            raise InvalidJob(f"inputs.{name}", f"is not a tariff input; expected {', '.join(_INPUTS)}")
    for name in ("audit_kind", "services", "belgian_sites", "people"):
        if name not in inputs:
            raise InvalidJob(f"inputs.{name}", "is required")
    audit_kind = inputs["audit_kind"]
    if audit_kind not in tariff.audit_kinds:
        raise InvalidJob("inputs.audit_kind", f"must be one of {', '.join(tariff.audit_kinds)}")
    services = _id_list(inputs["services"], "inputs.services", tariff.services, "service")
    if not services:
        raise InvalidJob("inputs.services", "must name at least one service")
    people = _count(inputs["people"], "inputs.people", 1)
    belgian_sites = _count(inputs["belgian_sites"], "inputs.belgian_sites", 1)
    foreign_sites = _count(inputs.get("foreign_sites", 0), "inputs.foreign_sites", 0)
    known = tuple(tariff.requirement_share)
    exempt = _id_list(inputs.get("exempt_requirements", []), "inputs.exempt_requirements", known,
                      "requirement")
    scope = tariff.audit_kinds[audit_kind][1]
    if scope == SCOPE_LISTED:
        if "requirements_in_scope" not in inputs:
            raise InvalidJob("inputs.requirements_in_scope", f"is required for a {audit_kind} audit")
        listed = _id_list(inputs["requirements_in_scope"], "inputs.requirements_in_scope", known,
                          "requirement")
        for index, requirement in enumerate(listed):
            if requirement in exempt:
                raise InvalidJob(f"inputs.requirements_in_scope[{index}]",
                                 f"requirement {requirement} is exempt and cannot be in scope")
        in_scope = tuple(r for r in known if r in listed)
    else:
        if "requirements_in_scope" in inputs:
            raise InvalidJob("inputs.requirements_in_scope",
                             f"a {audit_kind} audit covers every requirement that is not exempt; "
                             "list exemptions in exempt_requirements")
        in_scope = tuple(r for r in known if r not in exempt)
    if not in_scope:
        raise InvalidJob("inputs.requirements_in_scope" if scope == SCOPE_LISTED else "inputs.exempt_requirements",
                         "leaves no requirement to audit")
    return {"audit_kind": audit_kind, "services": services, "people": people,
            "belgian_sites": belgian_sites, "foreign_sites": foreign_sites,
            "in_scope": in_scope, "exempt": tuple(r for r in known if r in exempt)}


def _count(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJob(field, "must be a whole number")
    if value < minimum:
        raise InvalidJob(field, f"must be at least {minimum}")
    if value > 1_000_000:
        raise InvalidJob(field, "must be at most 1000000")
    return value


def _id_list(value: Any, field: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidJob(field, "must be a list")
    seen: list[str] = []
    for index, item in enumerate(value):
        if item not in known:
            raise InvalidJob(f"{field}[{index}]", f"unknown {what} {item!r}; expected one of {', '.join(known)}")
        if item in seen:
            raise InvalidJob(f"{field}[{index}]", f"{what} {item} is named twice")
        seen.append(item)
    return tuple(seen)


def _day(on: dt.date | str | None) -> dt.date:
    if on is None:
        return dt.datetime.now(_BRUSSELS).date()
    if isinstance(on, dt.datetime):
        return on.date()
    if isinstance(on, dt.date):
        return on
    if isinstance(on, str):
        try:
            return dt.date.fromisoformat(on)
        except ValueError:
            pass
    raise InvalidJob("on", f"must be a date (YYYY-MM-DD), not {on!r}")


def _within(value: int, bounds: tuple[int, int | None]) -> bool:
    low, high = bounds
    return value >= low and (high is None or value <= high)


def _round_up(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _plain(value: Decimal) -> str:
    """``Decimal('16.0')`` -> ``16``; ``Decimal('3.50')`` -> ``3.5``."""
    return format(value.normalize(), "f")


@cache
def _load_all(directory: Path) -> tuple[Tariff, ...]:
    tariffs = []
    for path in sorted(directory.glob("tariff-*.json")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise TariffDataError(f"{path.name}: file name must be tariff-<version>.json")
        try:
            tariff = _parse(json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise TariffDataError(f"{path.name}: {exc!r}") from exc
        if tariff.version != match.group("version"):
            raise TariffDataError(f"{path.name}: holds version {tariff.version!r}")
        tariffs.append(tariff)
    dates = [t.effective_from for t in tariffs]
    if len(set(dates)) != len(dates):
        raise TariffDataError(f"{directory}: two tariff versions take effect on the same date")
    return tuple(sorted(tariffs, key=lambda t: t.effective_from))


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"write amounts and hours as strings or integers, not {value!r}")
    return Decimal(str(value))


def _hours(raw: Mapping[str, Any], components: tuple[str, ...]) -> dict[str, Decimal]:
    unknown = set(raw) - set(components)
    if unknown:
        raise ValueError(f"hours for unknown components {sorted(unknown)}")
    return {c: _decimal(raw[c]) for c in components if c in raw}


def _bounds(raw: Mapping[str, Any]) -> tuple[int, int | None]:
    return int(raw["min"]), (None if raw.get("max") is None else int(raw["max"]))


def _parse(raw: dict[str, Any]) -> Tariff:
    components = tuple((c["id"], c["label"]) for c in raw["components"])
    ids = tuple(c for c, _ in components)
    classes = tuple(
        StructureClass(row["id"], row["label"], _bounds(row["people"]), _bounds(row["belgian_sites"]),
                       int(row.get("included_belgian_sites", 1)), _hours(row["hours"], ids),
                       row.get("source", ""))
        for row in raw["structure_classes"]
    )
    rules = {
        key: HoursRule(key, raw[key]["label"], _hours(raw[key]["hours"], ids), raw[key].get("source", ""))
        for key in ("per_additional_service", "per_extra_belgian_site")
    }
    scope = raw["scope_rule"]
    share = {r: _decimal(v) for r, v in scope["requirement_share"].items()}
    if sum(share.values(), Decimal(0)) != 1:
        raise ValueError("scope_rule.requirement_share must add up to 1")
    kinds = {k: (v["label"], v["scope"]) for k, v in raw["audit_kinds"].items()}
    if any(scope_kind not in (SCOPE_ALL, SCOPE_LISTED) for _, scope_kind in kinds.values()):
        raise ValueError(f"audit_kinds scope must be {SCOPE_ALL!r} or {SCOPE_LISTED!r}")
    if raw["visit_component"] not in ids:
        raise ValueError("visit_component must be one of the components")
    travel = raw["travel_costs"]
    calibration = raw["calibration"]
    return Tariff(
        version=raw["version"],
        effective_from=dt.date.fromisoformat(raw["effective_from"]),
        title=raw["title"],
        currency=raw["currency"],
        sources=tuple(raw["sources"]),
        assumption=raw["assumption"],
        hourly_rate=_decimal(raw["hourly_rate"]["amount"]),
        hourly_rate_source=raw["hourly_rate"].get("source", ""),
        vat_rate=_decimal(raw["vat"]["rate"]),
        vat_source=raw["vat"].get("source", ""),
        hours_per_day=_decimal(raw["hours_per_day"]["hours"]),
        hours_step=_decimal(raw["rounding"]["hours_step"]),
        visit_days_step=_decimal(raw["rounding"]["visit_days_step"]),
        components=components,
        visit_component=raw["visit_component"],
        services=tuple(raw["services"]),
        structure_classes=classes,
        per_additional_service=rules["per_additional_service"],
        per_extra_belgian_site=rules["per_extra_belgian_site"],
        audit_kinds=kinds,
        requirement_share=share,
        minimum_hours=_hours(scope.get("minimum_hours", {}), ids),
        scope_rule=scope["text"],
        scope_rule_source=scope.get("source", ""),
        travel_rule=travel["rule"],
        travel_label=travel["label"],
        travel_text=travel["text"],
        travel_source=travel.get("source", ""),
        notes=tuple(raw.get("notes", ())),
        calibration_inputs=dict(calibration["inputs"]),
        calibration_hours=_decimal(calibration["expected_hours"]),
        calibration_text=calibration.get("text", ""),
    )
