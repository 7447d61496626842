"""Bookkeeping of bulk imports: an import id is claimed once (idempotency) and its counts
show progress. The caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.store.models import ImportRow
from service.store.sql import insert_if_absent

RUNNING = "RUNNING"
DONE = "DONE"


def claim_import(
    session: Session,
    import_id: str,
    kind: str,
    *,
    fingerprint: str | None = None,
    rows_total: int = 0,
    now: datetime | None = None,
) -> bool:
    """Record a new import as RUNNING; False when the import id is already known.

    Make it the first write of the transaction: a concurrent claim of the same id then waits
    for this transaction and sees the id taken once it commits."""
    at = now or utc_now()
    return insert_if_absent(
        session,
        ImportRow,
        {
            "import_id": import_id,
            "kind": kind,
            "status": RUNNING,
            "fingerprint": fingerprint,
            "rows_total": rows_total,
            "rows_applied": 0,
            "rows_rejected": 0,
            "created_at": at,
            "updated_at": at,
            "finished_at": None,
        },
    )


def finish_import(
    session: Session,
    import_id: str,
    *,
    rows_applied: int,
    rows_rejected: int = 0,
    now: datetime | None = None,
) -> None:
    at = now or utc_now()
    session.execute(
        update(ImportRow)
        .where(ImportRow.import_id == import_id)
        .values(
            status=DONE,
            rows_applied=rows_applied,
            rows_rejected=rows_rejected,
            updated_at=at,
            finished_at=at,
        )
    )
