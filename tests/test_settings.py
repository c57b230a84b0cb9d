"""Worker settings from the environment: defaults, and refusals that name the variable."""

from __future__ import annotations

import pytest

from kmop.settings import SettingsError, load_settings


def test_converter_and_scheduling_defaults() -> None:
    settings = load_settings({})

    assert settings.converter_max_memory_mb == 512
    assert settings.converter_max_conversions == 1000
    assert settings.worker_scheduling == "batch"


def test_converter_and_scheduling_settings_are_read() -> None:
    settings = load_settings({"KMOP_CONVERTER_MAX_MEMORY_MB": "2048", "KMOP_CONVERTER_MAX_CONVERSIONS": "50",
                              "KMOP_WORKER_SCHEDULING": "normal"})

    assert (settings.converter_max_memory_mb, settings.converter_max_conversions) == (2048, 50)
    assert settings.worker_scheduling == "normal"


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("KMOP_CONVERTER_MAX_MEMORY_MB", "32", "outside 64.."),
    ("KMOP_CONVERTER_MAX_MEMORY_MB", "lots", "not a whole number"),
    ("KMOP_CONVERTER_MAX_CONVERSIONS", "0", "outside 1.."),
    ("KMOP_WORKER_SCHEDULING", "realtime", "not one of batch, normal"),
])
def test_bad_values_are_refused_naming_the_variable_and_the_reason(name: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({name: value})

    assert name in str(refused.value) and reason in str(refused.value)
