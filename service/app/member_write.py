"""A unit of work for the writes a member asks for through a replica that may still cache them
after they were deleted from the store (by hand: no change feed). Such a write is refused by
the foreign keys of the member's rows; it becomes NOT_FOUND MEMBER_NOT_FOUND, with nothing
written, and the member is forgotten in this replica's cache, so the next lookup says so too.

(A candidate for UnitOfWork itself: every writer of a cached member needs it.)
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import IntegrityError

from service.app.unit_of_work import UnitOfWork
from service.errors import NotFound
from service.store.member_repo import existing_members


class MemberWrite(UnitOfWork):
    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        gone: list[str] = []
        if isinstance(error, IntegrityError) and self._locked:
            self.session.rollback()
            locked = sorted(self._locked)
            gone = sorted(set(locked) - set(existing_members(self.session, locked)))
        super().__exit__(kind, error, trace)
        if gone:
            self._on_committed(gone)
            raise NotFound("member not found", reason="MEMBER_NOT_FOUND") from None
