"""The configuration version (spec §12): a number of the catalogue-and-offers configuration
that every replica reads from the store with the configuration itself, so the same
configuration has the same number everywhere. It only grows: every catalogue or offer write
raises it in its own transaction (catalog_repo), the one row locked until that commits, so
two writers never share a number."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import ConfigurationVersionRow
from service.store.sql import table_of, upsert

_VERSION = table_of(ConfigurationVersionRow)
_ROW_ID = 1


def raise_configuration_version(session: Session) -> None:
    """One more than before, in the caller's transaction (one statement, safe against a
    concurrent first insert)."""
    upsert(
        session,
        ConfigurationVersionRow,
        [{"id": _ROW_ID, "version": 1}],
        on_conflict=lambda excluded: {"version": _VERSION.c.version + 1},
    )


def configuration_version(session: Session) -> int:
    """The version of the configuration this session reads; 0 before the first write."""
    found = session.execute(select(_VERSION.c.version).where(_VERSION.c.id == _ROW_ID)).scalar()
    return int(found or 0)
