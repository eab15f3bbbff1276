"""Budget periods: when a key's spend window starts and when it resets (UTC calendar).

    day     from 00:00 UTC to the next 00:00 UTC
    month   from the 1st 00:00 UTC to the next month's 1st
    total   since the key exists; never resets
"""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_window(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    """(start, reset) of the period containing `now` (aware); reset is None for `total`."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, following
    if period == "total":
        return EPOCH, None
    raise ValueError(f"unknown budget period {period!r}")


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as the admin API writes every time."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
