"""The favorite-products auto-fill action, as the back office runs it: fill the empty slots of
an offer for the members asked for, or for every member who can have a list. The rules and
the batches are the member jobs' use case (service.app.jobs.run_autofill); this adds the
back office's totals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from service.app.jobs import run_autofill
from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.engine.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class AutofillTotals:
    members_updated: int = 0
    slots_filled: int = 0


def run_favorite_autofill(
    sessions: Sessions,
    snapshot: Snapshot,
    offer_id: str,
    member_ids: Sequence[str],
    now: datetime,
    on_committed: Callable[[list[str]], None],
) -> AutofillTotals:
    """Fill the offer's empty slots for `member_ids` (none: everyone who can have a list),
    one unit of work per batch; `on_committed` (this replica's cache) hears each batch's
    members after its commit. An unknown offer, one without auto-fill or one that has ended
    is refused, members or not."""
    outcome = run_autofill(
        lambda: UnitOfWork(sessions, on_committed, now=now),
        snapshot,
        offer_id,
        list(member_ids) or None,
    )
    return AutofillTotals(outcome.members_updated, outcome.slots_filled)
