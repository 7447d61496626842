"""Members one by one (spec §18): a CRM screen or the call centre creates or replaces a
member's profile, gives a card or blocks one. Every change is a record of the attribute import
(service.engine.attributes) applied by the import's own batch rules in one unit of work
(service.imports.run.apply_batch): the same checks against the store, the same writes, member
documents, change feed and events - only without an import id and its bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.clock import Clock, utc_now
from service.engine.attributes import AttributeRecord, CardChange, MemberProfile
from service.errors import InvalidArgument, NotFound
from service.imports.records import ParsedRow
from service.imports.run import apply_batch
from service.store.profile_repo import StoredProfile, load_profile, owner_of_card

# What the written rows carry where an import would put its id (personalized offers and
# favorite-categories terms; a profile or a card has no such column).
SINGLE_MEMBER_SOURCE = "member-api"


class MemberProfiles:
    def __init__(
        self,
        sessions: Sessions,
        on_committed: Callable[[list[str]], None],
        forget_card: Callable[[str], None],
        *,
        clock: Clock = utc_now,
    ) -> None:
        """`on_committed`: this replica's cache hears the changed member; `forget_card`: it
        reads a changed card afresh (as after an import batch)."""
        self._sessions = sessions
        self._on_committed = on_committed
        self._forget_card = forget_card
        self._clock = clock

    def profile(self, member_id: str) -> StoredProfile | None:
        with self._sessions() as session:
            return load_profile(session, member_id)

    def owner_of_card(self, card_number: str) -> str | None:
        with self._sessions() as session:
            return owner_of_card(session, card_number)

    def upsert(self, profile: MemberProfile) -> tuple[StoredProfile, bool]:
        """The profile as stored now, and whether this call created the member."""
        created = self.profile(profile.member_id) is None
        self._apply(profile)
        return self._stored(profile.member_id), created

    def set_card(self, change: CardChange) -> StoredProfile:
        """Give (active) or block a card of an existing member."""
        if self.profile(change.member_id) is None:
            raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
        self._apply(change)
        return self._stored(change.member_id)

    def _stored(self, member_id: str) -> StoredProfile:
        stored = self.profile(member_id)
        if stored is None:  # deleted by hand right after the write
            raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
        return stored

    def _apply(self, record: AttributeRecord) -> None:
        """The record through the import's batch rules; a refusal (InvalidArgument naming
        the record's field) writes nothing."""
        with UnitOfWork(self._sessions, self._on_committed, now=self._clock()) as uow:
            applied = apply_batch(
                uow, [ParsedRow(1, record=record)], import_id=SINGLE_MEMBER_SOURCE
            )
            if applied.errors:
                error = applied.errors[0]
                raise InvalidArgument(error.field, error.reason)
            uow.commit()
        for card_number in applied.card_numbers:
            self._forget_card(card_number)
