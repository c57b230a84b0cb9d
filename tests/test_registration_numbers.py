"""Registration numbers come from a durable sequence: never two dossiers with one number.

Run on both stores (moto's S3 server over HTTP and the local folder), each racing issuer with its
own store client and allocator, as separate worker processes would have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kmop.errors import InvalidJob
from storage.base import DocumentStore, StoredObject
from storage.keys import registration_number_key
from storage.local import LocalFolderStore
from storage.s3 import S3Store
from workflow.registration_numbers import RegistrationNumber, RegistrationNumbers


@pytest.fixture(params=["local", "s3"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], DocumentStore]:
    """A factory of clients of one store (each racer gets its own, as a process would)."""
    if request.param == "local":
        return lambda: LocalFolderStore(tmp_path / "store")
    shared: S3Store = request.getfixturevalue("s3_store")
    return lambda: S3Store.from_settings(
        endpoint_url=shared.client.meta.endpoint_url, bucket=shared.bucket, region="us-east-1",
        access_key=os.environ.get("KMOP_TEST_S3_ACCESS_KEY", "testing"),
        secret_key=os.environ.get("KMOP_TEST_S3_SECRET_KEY", "testing"))


class CountingStore:
    """Counts the HEAD requests an allocator makes, passing everything to a store."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.heads = 0

    def head(self, key: str) -> StoredObject | None:
        self.heads += 1
        return self.store.head(key)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.store, name)


def test_twenty_concurrent_issues_get_twenty_different_numbers(new_store: Callable[[], DocumentStore]) -> None:
    start = threading.Barrier(20)

    def issue(index: int) -> str:
        numbers = RegistrationNumbers(new_store())
        start.wait()
        return str(numbers.number_for(f"DOSSIER-{index:02d}", "opleiding"))

    with ThreadPoolExecutor(20) as pool:
        issued = list(pool.map(issue, range(20)))

    assert len(set(issued)) == 20
    assert sorted(issued) == [f"DV.O{n:06d}" for n in range(1, 21)]  # taken from the bottom, no gap
    numbers = RegistrationNumbers(new_store())
    for index, value in enumerate(issued):
        held = numbers.held_by(f"DOSSIER-{index:02d}", "opleiding")
        assert held is not None and str(held) == value
        assert numbers.holder(held) == f"DOSSIER-{index:02d}"


def test_a_dossier_keeps_its_number_for_every_later_certificate(new_store: Callable[[], DocumentStore]) -> None:
    first = RegistrationNumbers(new_store()).number_for("DOSSIER-A", "opleiding")
    RegistrationNumbers(new_store()).number_for("DOSSIER-B", "opleiding")

    assert RegistrationNumbers(new_store()).number_for("DOSSIER-A", "opleiding") == first
    assert str(first) == "DV.O000001"


def test_a_number_taken_by_an_issue_that_died_is_never_given_to_another_dossier(
        new_store: Callable[[], DocumentStore]) -> None:
    store = new_store()  # the issue died between taking the number and recording it in its dossier
    store.put_once(registration_number_key("advies", 1),
                   b'{"registration_number": "DV.A000001", "dossier_id": "DOSSIER-C"}', "application/json")
    numbers = RegistrationNumbers(new_store())

    assert str(numbers.number_for("DOSSIER-D", "advies")) == "DV.A000002"
    assert str(numbers.number_for("DOSSIER-C", "advies")) == "DV.A000003"  # the number is lost, not shared
    assert numbers.holder(RegistrationNumber("advies", 1)) == "DOSSIER-C"
    with pytest.raises(InvalidJob, match="held by another dossier"):
        numbers.claim("DOSSIER-E", "DV.A000001", "advies")


def test_each_service_has_its_own_sequence_and_letter(new_store: Callable[[], DocumentStore]) -> None:
    numbers = RegistrationNumbers(new_store(), first=236_716)

    assert str(numbers.number_for("DOSSIER-E", "opleiding")) == "DV.O236716"
    assert str(numbers.number_for("DOSSIER-F", "advies")) == "DV.A236716"
    assert str(numbers.number_for("DOSSIER-G", "opleiding")) == "DV.O236717"


def test_a_number_a_producer_names_is_refused_when_another_dossier_holds_it(
        new_store: Callable[[], DocumentStore]) -> None:
    numbers = RegistrationNumbers(new_store())
    taken = numbers.number_for("DOSSIER-H", "opleiding")

    with pytest.raises(InvalidJob) as refused:
        RegistrationNumbers(new_store()).claim("DOSSIER-I", str(taken), "opleiding")
    assert refused.value.field == "data.registration_number"
    assert "held by another dossier" in refused.value.reason
    assert numbers.held_by("DOSSIER-I", "opleiding") is None

    assert str(numbers.claim("DOSSIER-H", str(taken), "opleiding")) == str(taken)
    named = numbers.claim("DOSSIER-I", "DV.O000500", "opleiding")
    assert str(named) == "DV.O000500" and numbers.holder(named) == "DOSSIER-I"
    with pytest.raises(InvalidJob, match="holds registration number DV.O000500"):
        numbers.claim("DOSSIER-I", "DV.O000501", "opleiding")
    with pytest.raises(InvalidJob, match="carries the letter O"):
        numbers.claim("DOSSIER-J", "DV.A000001", "opleiding")


def test_the_next_free_number_is_found_in_logarithmically_many_requests(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    for number in range(1, 1001):
        store.put_once(registration_number_key("opleiding", number),
                       f'{{"dossier_id": "OLD-{number}"}}'.encode(), "application/json")
    counting = CountingStore(store)

    issued = RegistrationNumbers(counting).number_for("DOSSIER-K", "opleiding")  # type: ignore[arg-type]

    assert issued == RegistrationNumber("opleiding", 1001)
    assert counting.heads <= 2 * 11 + 3  # 2 log2(1000) probes, the dossier's own record, the claim


@pytest.mark.slow
def test_two_applicants_of_the_same_day_are_registered_under_different_numbers(tmp_path: Path) -> None:
    """Two dossiers through ``kmop demo`` into one store, as a user runs it (in a process of its own)."""
    from kmop.demo import example_applicant

    out = tmp_path / "out"
    dossiers = [example_applicant()["dossier_id"], "DEMO-OTHER-0002"]
    numbers = []
    for dossier_id in dossiers:
        applicant = tmp_path / f"{dossier_id}.json"
        applicant.write_text(json.dumps({**example_applicant(), "dossier_id": dossier_id}), encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "kmop.cli", "demo", "--out", str(out), "--input", str(applicant),
                                 "--today", "2026-11-27"], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        numbers.append(json.loads((out / "dossier.json").read_text())["state"]["registration_number"])

    assert numbers == ["DV.A000001", "DV.A000002"]
    store = LocalFolderStore(out / "store")
    holders = [RegistrationNumbers(store).holder(RegistrationNumber("advies", n)) for n in (1, 2)]
    assert holders == dossiers
