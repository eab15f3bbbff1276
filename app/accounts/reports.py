"""Usage from the ledger, summed or listed, for GET /admin/usage and `flask keys usage`.

    usage_report(database, UsageQuery(...)) -> Report(columns, rows, totals)

Filters: `key` (a key id), `model` (`provider/model` or a bare model name), `since` (inclusive),
`until` (exclusive). `group_by`: `key` (key id and name; calls without a virtual key are grouped
by their subject), `model` (provider and model) or `day` (UTC date); without it, the rows
themselves, newest first, at most `limit`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select

from app.accounts.budgets import iso
from app.accounts.database import Database
from app.accounts.models import UsageRecord, VirtualKey

GROUPS = ("key", "model", "day")
SUMS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "unpriced_requests")
ROW_COLUMNS = ("time", "request_id", "key_id", "subject", "endpoint", "provider", "deployment", "model", "alias",
               "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "priced", "status", "latency_ms",
               "streamed", "estimated", "error")
GROUP_COLUMNS = {"key": ("key_id", "key_name", "subject"), "model": ("provider", "model"), "day": ("day",)}


@dataclass(frozen=True)
class UsageQuery:
    key: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    group_by: str | None = None
    limit: int = 1000


@dataclass
class Report:
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] = field(default_factory=dict)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()


def _filters(query: UsageQuery) -> list:
    where = []
    if query.key:
        where.append(UsageRecord.key_id == query.key)
    if query.model:
        provider, sep, model = query.model.partition("/")
        if sep:
            where += [UsageRecord.provider == provider, UsageRecord.model == model]
        else:
            where.append(UsageRecord.model == query.model)
    if query.since:
        where.append(UsageRecord.time >= query.since)
    if query.until:
        where.append(UsageRecord.time < query.until)
    return where


def _sums() -> list:
    return [func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageRecord.total_tokens), 0).label("total_tokens"),
            func.coalesce(func.sum(UsageRecord.cost_usd), 0.0).label("cost_usd"),
            func.coalesce(func.sum(case((UsageRecord.priced.is_(False), 1), else_=0)), 0).label("unpriced_requests")]


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif name == "cost_usd" and value is not None:
            value = round(float(value), 8)
        elif name in SUMS and value is not None:
            value = int(value)
        out[name] = value
    return out


def usage_report(database: Database, query: UsageQuery) -> Report:
    where = _filters(query)
    with database.session() as session:
        totals = _clean(dict(session.execute(select(*_sums()).where(*where)).mappings().one()))
        if query.group_by is None:
            rows = session.scalars(select(UsageRecord).where(*where)
                                   .order_by(UsageRecord.time.desc(), UsageRecord.id.desc()).limit(query.limit))
            return Report(ROW_COLUMNS, [_clean({c: getattr(r, c) for c in ROW_COLUMNS}) for r in rows], totals)
        if query.group_by == "key":
            subject = case((UsageRecord.key_id.is_(None), UsageRecord.subject), else_=None).label("subject")
            statement = (select(UsageRecord.key_id, VirtualKey.name.label("key_name"), subject, *_sums())
                         .outerjoin(VirtualKey, VirtualKey.id == UsageRecord.key_id)
                         .group_by(UsageRecord.key_id, VirtualKey.name, subject)
                         .order_by(func.sum(UsageRecord.cost_usd).desc(), UsageRecord.key_id))
        elif query.group_by == "model":
            statement = (select(UsageRecord.provider, UsageRecord.model, *_sums())
                         .group_by(UsageRecord.provider, UsageRecord.model)
                         .order_by(func.sum(UsageRecord.cost_usd).desc(), UsageRecord.provider, UsageRecord.model))
        elif query.group_by == "day":
            day = func.date(UsageRecord.time).label("day")
            statement = select(day, *_sums()).group_by(day).order_by(day)
        else:
            raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
        rows = [_clean(dict(row)) for row in session.execute(statement.where(*where).limit(query.limit)).mappings()]
    return Report(GROUP_COLUMNS[query.group_by] + SUMS, rows, totals)

