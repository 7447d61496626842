"""The favorite-products auto-fill action (SPEC 7.1 auto-fill), as the back office runs it:
fill the empty slots of an offer for the members asked for, or for every member who can have
a list (all members for a predefined list, last month's buyers for a purchase-history list).

One unit of work per batch of members (favorites_repo.AUTOFILL_BATCH), so a run over millions
of members holds no long transaction and shows each batch at once; the rules and the writes
of a batch are favorites_repo.run_autofill's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.batching import batched, chunks
from service.engine.model import FavoriteProductsOffer, ListSource
from service.engine.snapshot import Snapshot
from service.store import favorites_repo
from service.store.loader import iter_member_ids


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
    """Fill the offer's empty slots for `member_ids` (none: everyone who can have a list);
    `on_committed` (this replica's cache) hears each batch's members after its commit. An
    unknown offer, one without auto-fill or one that has ended is refused, members or not."""
    favorite = favorites_repo.favorite_offer(snapshot, offer_id)
    members_updated = slots_filled = batches = 0
    for batch in _batches(sessions, snapshot, favorite, member_ids, now):
        batches += 1
        with UnitOfWork(sessions, now=now) as uow:
            outcome = favorites_repo.run_autofill(uow.session, snapshot, offer_id, batch, now)
            uow.commit()
        on_committed(list(outcome.member_ids))
        members_updated += outcome.members_updated
        slots_filled += outcome.slots_filled
    if batches == 0:  # nobody to fill: still refuse an offer without auto-fill, or ended
        with sessions() as session:
            favorites_repo.run_autofill(session, snapshot, offer_id, [], now)
    return AutofillTotals(members_updated, slots_filled)


def _batches(
    sessions: Sessions,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_ids: Sequence[str],
    now: datetime,
) -> Iterator[list[str]]:
    """The members asked for, or every member who can have a list, in batches."""
    size = favorites_repo.AUTOFILL_BATCH
    if member_ids:
        yield from (list(part) for part in chunks(member_ids, size))
        return
    with sessions() as reader:
        if favorite.list_source is ListSource.PREDEFINED:
            candidates: Iterator[str] = iter_member_ids(reader)
        else:
            month = favorites_repo.list_month(now, snapshot.program_time_zone)
            candidates = favorites_repo.members_who_bought(reader, month)
        yield from batched(candidates, size)
