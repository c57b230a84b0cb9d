"""The audit tariff: EUR 150 per hour times the hours of the (assumed) time table."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kmop.errors import InvalidJob
from workflow.tariff import TARIFF_DATA_DIR, TariffDataError, TariffTable, compute_quote, default_table

ON = dt.date(2026, 11, 30)
SHIPPED = TARIFF_DATA_DIR / "tariff-2024.1.json"


def average(**changes: Any) -> dict[str, Any]:
    """A single-service initial audit of an average structure (class B, one Belgian site)."""
    inputs: dict[str, Any] = {"audit_kind": "initial", "services": ["advies"], "belgian_sites": 1,
                              "foreign_sites": 0, "people": 3}
    inputs.update(changes)
    return inputs


def shipped_raw() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def write_tariff(directory: Path, raw: dict[str, Any]) -> None:
    (directory / f"tariff-{raw['version']}.json").write_text(json.dumps(raw), encoding="utf-8")


def test_average_single_service_audit_is_16_hours_2_days_2400_euro_plus_vat() -> None:
    quote = compute_quote(average(), on=ON)
    assert quote.total_hours == Decimal(16)
    assert quote.audit_days == Decimal(2)
    assert quote.visit_days == Decimal(1)
    assert quote.hourly_rate == Decimal("150.00")
    assert quote.subtotal == Decimal("2400.00")
    assert quote.vat_rate == Decimal("0.21")
    assert quote.vat == Decimal("504.00")
    assert quote.total == Decimal("2904.00")
    assert quote.travel is None


def test_calibration_in_the_data_file_holds() -> None:
    tariff = default_table().effective_on(ON)
    quote = compute_quote(tariff.calibration_inputs, tariff, on=ON)
    assert quote.total_hours == tariff.calibration_hours == Decimal(16)


def test_every_line_is_hours_times_rate_from_a_named_row_and_lines_add_up() -> None:
    quote = compute_quote(average(services=["advies", "opleiding"], belgian_sites=4, people=30), on=ON)
    assert quote.structure_class.id == "D"
    for line in quote.lines:
        assert isinstance(line.amount, Decimal) and isinstance(line.hours, Decimal)
        assert line.hours == line.quantity * line.unit_hours
        assert line.amount == (line.hours * line.rate).quantize(Decimal("0.01"))
        assert line.source.startswith("tariff 2024.1: ")
    assert sum(line.amount for line in quote.lines) == quote.subtotal
    assert sum(line.hours for line in quote.lines) == quote.total_hours
    assert quote.total == quote.subtotal + quote.vat


@pytest.mark.parametrize("bigger", [
    {"belgian_sites": 2},
    {"belgian_sites": 5},
    {"services": ["advies", "opleiding"]},
    {"people": 6},
    {"people": 51},
])
def test_more_sites_services_or_people_cost_more(bigger: dict[str, Any]) -> None:
    base = compute_quote(average(), on=ON)
    larger = compute_quote(average(**bigger), on=ON)
    assert larger.total_hours > base.total_hours
    assert larger.total > base.total


def test_one_person_costs_less_than_the_average() -> None:
    assert compute_quote(average(people=1), on=ON).total < compute_quote(average(), on=ON).total


@pytest.mark.parametrize("kind", ["follow_up", "additional"])
def test_follow_up_for_two_of_five_requirements_costs_less_than_initial(kind: str) -> None:
    initial = compute_quote(average(), on=ON)
    follow_up = compute_quote(average(audit_kind=kind, requirements_in_scope=["V2", "V3"]), on=ON)
    assert follow_up.requirements_in_scope == ("V2", "V3")
    assert follow_up.scope_share == Decimal("0.4")
    assert follow_up.total < initial.total
    assert follow_up.total_hours == Decimal(8)  # 4 x 0.4 -> 2; 8 x 0.4 -> 4 (minimum 4); 4 x 0.4 -> 2
    assert any("scope_rule" in line.source for line in follow_up.lines)


def test_follow_up_keeps_the_minimum_hours_per_component() -> None:
    quote = compute_quote(average(audit_kind="follow_up", requirements_in_scope=["V4"], people=1), on=ON)
    assert quote.hours_by_component == {"preparation": Decimal(1), "visit": Decimal(4), "reporting": Decimal(2)}


def test_exemptions_reduce_the_scope_of_an_initial_audit() -> None:
    quote = compute_quote(average(exempt_requirements=["V1", "V3"]), on=ON)
    assert quote.requirements_in_scope == ("V2", "V4", "V5")
    assert quote.total < compute_quote(average(), on=ON).total


def test_foreign_sites_add_a_travel_line_at_cost_outside_the_total() -> None:
    quote = compute_quote(average(foreign_sites=2), on=ON)
    assert quote.travel is not None and quote.travel.foreign_sites == 2 and quote.travel.rule == "at_cost"
    assert quote.total == compute_quote(average(), on=ON).total


def test_explain_mentions_every_line_and_the_totals() -> None:
    quote = compute_quote(average(services=["advies", "opleiding"], belgian_sites=3, foreign_sites=1,
                                  audit_kind="additional", requirements_in_scope=["V1", "V5"]), on=ON)
    text = quote.explain()
    for number, line in enumerate(quote.lines, 1):
        assert f"{number}. {line.component}: {line.label}" in text
        assert line.source in text
        assert f"EUR {line.amount}" in text
    for fact in (f"Subtotal: EUR {quote.subtotal}", f"VAT 21%: EUR {quote.vat}", f"Total: EUR {quote.total}",
                 "Tariff 2024.1", "Travel costs for 1 foreign site(s)", "Assumption:"):
        assert fact in text


def test_shipped_data_names_its_sources_and_assumptions() -> None:
    raw = shipped_raw()
    tags = {source["tag"] for source in raw["sources"]}
    assert "S4" in tags and all(source["url"].startswith("http") for source in raw["sources"])
    assert raw["hourly_rate"] == {"amount": "150.00", "source": "S4"}
    assert "assumption" in raw["assumption"].lower()
    assert all("assumption" in row["source"] for row in raw["structure_classes"])


def test_version_is_chosen_by_date(tmp_path: Path) -> None:
    write_tariff(tmp_path, shipped_raw())
    later = shipped_raw()
    later.update(version="2027.1", effective_from="2027-01-01")
    later["hourly_rate"]["amount"] = "160.00"
    write_tariff(tmp_path, later)
    table = TariffTable(tmp_path)
    assert table.versions == ["2024.1", "2027.1"]
    assert table.effective_on(dt.date(2026, 12, 31)).version == "2024.1"
    assert compute_quote(average(), on=dt.date(2026, 12, 31), table=table).subtotal == Decimal("2400.00")
    newer = compute_quote(average(), on=dt.date(2027, 1, 1), table=table)
    assert (newer.tariff_version, newer.subtotal) == ("2027.1", Decimal("2560.00"))
    assert compute_quote(average(), "2024.1", on=dt.date(2027, 6, 1), table=table).tariff_version == "2024.1"
    with pytest.raises(InvalidJob) as caught:
        compute_quote(average(), on=dt.date(2024, 1, 31), table=table)
    assert caught.value.field == "on"
    with pytest.raises(InvalidJob) as caught:
        compute_quote(average(), table.get("2027.1"), on=dt.date(2026, 6, 1))
    assert caught.value.field == "on" and "takes effect" in caught.value.reason
    with pytest.raises(InvalidJob) as caught:
        compute_quote(average(), "2030.1", on=ON, table=table)
    assert caught.value.field == "tariff"


def test_an_official_table_with_other_classes_and_components_needs_no_code_change(tmp_path: Path) -> None:
    raw = shipped_raw()
    raw.update(version="official-1", effective_from="2025-01-01")
    raw["components"] = [{"id": "visit", "label": "Audit ter plaatse"}, {"id": "office", "label": "Bureauwerk"}]
    raw["structure_classes"] = [
        {"id": "K", "label": "klein", "people": {"min": 1, "max": 9}, "belgian_sites": {"min": 1, "max": 2},
         "hours": {"visit": "7", "office": "5"}, "source": "official"},
        {"id": "G", "label": "groot", "people": {"min": 1, "max": None}, "belgian_sites": {"min": 1, "max": None},
         "hours": {"visit": "14", "office": "6"}, "source": "official"},
    ]
    raw["per_additional_service"]["hours"] = {"visit": "3"}
    raw["per_extra_belgian_site"]["hours"] = {"visit": "1.5", "office": "0.5"}
    raw["scope_rule"]["minimum_hours"] = {"visit": "3"}
    write_tariff(tmp_path, raw)
    table = TariffTable(tmp_path)
    small = compute_quote(average(belgian_sites=2), on=ON, table=table)
    assert (small.structure_class.id, small.total_hours) == ("K", Decimal("14"))  # 7 + 5 + 1.5 + 0.5
    assert compute_quote(average(belgian_sites=3), on=ON, table=table).structure_class.id == "G"


@pytest.mark.parametrize("change,field", [
    ({"people": 0}, "inputs.people"),
    ({"people": "3"}, "inputs.people"),
    ({"people": True}, "inputs.people"),
    ({"people": 2.5}, "inputs.people"),
    ({"belgian_sites": 0}, "inputs.belgian_sites"),
    ({"foreign_sites": -1}, "inputs.foreign_sites"),
    ({"services": []}, "inputs.services"),
    ({"services": "advies"}, "inputs.services"),
    ({"services": ["advies", "coaching"]}, "inputs.services[1]"),
    ({"services": ["advies", "advies"]}, "inputs.services[1]"),
    ({"audit_kind": "starter"}, "inputs.audit_kind"),
    ({"audit_kind": "follow_up"}, "inputs.requirements_in_scope"),
    ({"audit_kind": "follow_up", "requirements_in_scope": []}, "inputs.requirements_in_scope"),
    ({"audit_kind": "follow_up", "requirements_in_scope": ["V9"]}, "inputs.requirements_in_scope[0]"),
    ({"audit_kind": "follow_up", "requirements_in_scope": ["V3"], "exempt_requirements": ["V3"]},
     "inputs.requirements_in_scope[0]"),
    ({"requirements_in_scope": ["V3"]}, "inputs.requirements_in_scope"),
    ({"exempt_requirements": ["V1", "V2", "V3", "V4", "V5"]}, "inputs.exempt_requirements"),
    ({"sites": 2}, "inputs.sites"),
])
def test_invalid_inputs_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJob) as caught:
        compute_quote(average(**change), on=ON)
    assert caught.value.field == field


def test_missing_input_and_bad_date_are_named() -> None:
    inputs = average()
    del inputs["people"]
    with pytest.raises(InvalidJob) as caught:
        compute_quote(inputs, on=ON)
    assert (caught.value.field, caught.value.reason) == ("inputs.people", "is required")
    with pytest.raises(InvalidJob) as caught:
        compute_quote(average(), on="2026-13-01")
    assert caught.value.field == "on"
    with pytest.raises(InvalidJob) as caught:
        compute_quote(["advies"], on=ON)  # type: ignore[arg-type]
    assert caught.value.field == "inputs"


@pytest.mark.parametrize("breakage", ["float", "shares", "file_name"])
def test_broken_data_files_are_refused(tmp_path: Path, breakage: str) -> None:
    raw = shipped_raw()
    if breakage == "float":
        raw["hourly_rate"]["amount"] = 150.0
    elif breakage == "shares":
        raw["scope_rule"]["requirement_share"]["V5"] = "0.3"
    write_tariff(tmp_path, raw)
    if breakage == "file_name":
        (tmp_path / "tariff-2024.1.json").rename(tmp_path / "tariff-2024.2.json")
    with pytest.raises(TariffDataError):
        TariffTable(tmp_path)
