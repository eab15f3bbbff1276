"""The console's numbers from the usage ledger: traffic per minute, per deployment, recent errors.

    Traffic(database, clock).last_hour(provider=, model=)  -> per-minute series and breakdowns
    Traffic(...).by_deployment()                          -> {deployment: requests, error_rate, p50/p95}
    Traffic(...).recent_errors(limit)                     -> the latest failed requests, newest first

The ledger (`usage_ledger`, app/accounts/models.py) is the one record every worker of every host
writes, batched (USAGE_FLUSH_INTERVAL), so these are the same rows GET /admin/usage reports,
whichever worker serves the console. A request counts as an error when the gateway answered it
with a status of 400 or more; its latency is the ledger's `latency_ms` (the whole response, a
stream to its end); tokens are `total_tokens`.

At most one hour of rows is read (three short columns and a time each) and summed here: the
percentiles are the nearest-rank ones, which SQLite cannot compute, and an hour of even a busy
gateway's rows sums in a few milliseconds.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.accounts.budgets import iso
from app.accounts.database import Database
from app.accounts.models import UsageRecord, VirtualKey

WINDOW_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Call:
    time: datetime
    provider: str
    model: str
    status: int
    latency_ms: float
    tokens: int

    @property
    def failed(self) -> bool:
        return self.status >= 400


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)], 1)


def summary(calls: Iterable[Call]) -> dict[str, Any]:
    calls = list(calls)
    errors = sum(1 for call in calls if call.failed)
    latencies = [call.latency_ms for call in calls]
    return {"requests": len(calls), "errors": errors,
            "error_rate": round(errors / len(calls), 4) if calls else None,
            "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95),
            "tokens": sum(call.tokens for call in calls)}


class Traffic:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time):
        self.database = database
        self.clock = clock

    def _calls(self, since: datetime) -> list[Call]:
        statement = (select(UsageRecord.time, UsageRecord.provider, UsageRecord.model, UsageRecord.status,
                            UsageRecord.latency_ms, UsageRecord.total_tokens)
                     .where(UsageRecord.time >= since))
        with self.database.session() as session:
            return [Call(row.time, row.provider or "unknown", row.model or "unknown", row.status,
                         row.latency_ms, row.total_tokens) for row in session.execute(statement)]

    def _window(self) -> tuple[datetime, datetime]:
        """The last hour as whole minutes: the current (partial) minute is the last of 60."""
        end = datetime.fromtimestamp(self.clock(), UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return end - timedelta(minutes=WINDOW_MINUTES), end

    def last_hour(self, *, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        """Requests, errors, p50/p95 latency and tokens per minute over the last hour (for the calls
        of `provider` and `model` when given), and the hour's sums per provider and per model."""
        since, end = self._window()
        calls = self._calls(since)
        chosen = [call for call in calls
                  if (provider is None or call.provider == provider) and (model is None or call.model == model)]
        minutes: dict[datetime, list[Call]] = defaultdict(list)
        for call in chosen:
            minutes[call.time.replace(second=0, microsecond=0)].append(call)
        series = []
        for n in range(WINDOW_MINUTES):
            start = since + timedelta(minutes=n)
            series.append({"minute": iso(start), **summary(minutes.get(start, ()))})
        by_provider: dict[str, list[Call]] = defaultdict(list)
        by_model: dict[tuple[str, str], list[Call]] = defaultdict(list)
        for call in chosen:
            by_provider[call.provider].append(call)
            by_model[(call.provider, call.model)].append(call)
        return {
            "from": iso(since), "to": iso(end), "provider": provider, "model": model,
            "minutes": series, "totals": summary(chosen),
            "by_provider": [{"provider": name, **summary(group)} for name, group in sorted(by_provider.items())],
            "by_model": [{"provider": p, "model": m, **summary(group)} for (p, m), group in sorted(by_model.items())],
            "providers": sorted({call.provider for call in calls}),
            "models": sorted({f"{call.provider}/{call.model}" for call in calls}),
        }

    def by_deployment(self) -> dict[str, dict[str, Any]]:
        """The last hour's requests, error rate and latency per deployment (the ledger's `provider`)."""
        since, _ = self._window()
        groups: dict[str, list[Call]] = defaultdict(list)
        for call in self._calls(since):
            groups[call.provider].append(call)
        return {name: summary(group) for name, group in groups.items()}

    def recent_errors(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest failed requests, newest first, with their (already redacted) messages."""
        statement = (select(UsageRecord, VirtualKey.name)
                     .outerjoin(VirtualKey, VirtualKey.id == UsageRecord.key_id)
                     .where(UsageRecord.status >= 400)
                     .order_by(UsageRecord.time.desc(), UsageRecord.id.desc()).limit(limit))
        with self.database.session() as session:
            return [{"time": iso(row.time), "request_id": row.request_id, "route": row.endpoint,
                     "upstream": "/".join(part for part in (row.provider, row.model) if part) or None,
                     "status": row.status, "message": row.error, "key_name": key_name,
                     "subject": row.subject, "latency_ms": round(row.latency_ms, 1)}
                    for row, key_name in session.execute(statement)]
