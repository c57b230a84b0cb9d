"""Calendar arithmetic of the procedure (docs/domain.md, section D).

Months are added with end-of-month clamping (31 August + 6 months = 28/29 February); "five
years" of registration ends the day before the fifth anniversary.
"""

from __future__ import annotations

import calendar
import datetime as dt

AGENCY_DECISION_DAYS = 42  # "the agency may take up to 6 weeks": a timer that flags, never blocks


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def registration_end(valid_from: dt.date, years: int = 5) -> dt.date:
    return add_months(valid_from, 12 * years) - dt.timedelta(days=1)


def parse_date(value: str, field: str) -> dt.date:
    from kmop.errors import InvalidJob

    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidJob(field, f"{value!r} is not a date (YYYY-MM-DD)") from None
