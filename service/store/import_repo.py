"""Bookkeeping of bulk imports: an import id is claimed once (idempotency) and its counts
show progress; a run moves the progress batch by batch, each move conditional on the
progress the run expects (service.imports.run). The caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.store.models import ImportRow
from service.store.sql import insert_if_absent, table_of

RUNNING = "RUNNING"
DONE = "DONE"
IMPORTS = table_of(ImportRow)


@dataclass(frozen=True, slots=True)
class ImportState:
    """An import's bookkeeping row. While RUNNING, rows_total counts rows consumed so far."""

    import_id: str
    kind: str
    status: str
    fingerprint: str | None
    rows_total: int
    rows_applied: int
    rows_rejected: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def consumed(self) -> int:
        """Rows of the source already applied or rejected: where a resumed run goes on."""
        return self.rows_applied + self.rows_rejected

    @property
    def done(self) -> bool:
        return self.status == DONE


def load_import(session: Session, import_id: str) -> ImportState | None:
    row = session.execute(select(IMPORTS).where(IMPORTS.c.import_id == import_id)).first()
    if row is None:
        return None
    return ImportState(
        import_id=row.import_id,
        kind=row.kind,
        status=row.status,
        fingerprint=row.fingerprint,
        rows_total=row.rows_total,
        rows_applied=row.rows_applied,
        rows_rejected=row.rows_rejected,
        started_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


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


def hold_import(session: Session, import_id: str, consumed: int, now: datetime) -> bool:
    """Lock the import's row until the transaction ends, if it is RUNNING with `consumed`
    rows applied or rejected: False when it is not (another run moved it). Make it the first
    statement of a batch."""
    result = session.execute(
        update(IMPORTS)
        .where(
            IMPORTS.c.import_id == import_id,
            IMPORTS.c.status == RUNNING,
            IMPORTS.c.rows_applied + IMPORTS.c.rows_rejected == consumed,
        )
        .values(updated_at=now)
    )
    return getattr(result, "rowcount", 0) == 1


def advance_import(
    session: Session,
    import_id: str,
    *,
    rows: int,
    applied: int,
    rejected: int,
    now: datetime,
    final: bool = False,
) -> None:
    """Count a batch of `rows` rows of the source, `applied` and `rejected`; `final` marks
    the import DONE."""
    values = {
        "rows_applied": IMPORTS.c.rows_applied + applied,
        "rows_rejected": IMPORTS.c.rows_rejected + rejected,
        "rows_total": IMPORTS.c.rows_total + rows,
        "updated_at": now,
    }
    if final:
        values.update(status=DONE, finished_at=now)
    session.execute(update(IMPORTS).where(IMPORTS.c.import_id == import_id).values(values))
