"""Running an attribute import: claim the import id, apply rows in batches, finish.

    run = AttributeImport(sessions, "2026-03-crm", fingerprint=digest, on_batch=report)
    start = run.begin()            # claims the id, or finds it DONE (replayed) or RUNNING
    if not start.replayed:
        outcome = run.run(source.rows(skip=start.skip))

Idempotent by import id: an id already DONE changes nothing (replayed). Crash-safe and
resumable: every batch is one transaction that also advances the import's progress
(rows_applied + rows_rejected = rows of the source consumed), so after a crash or a kill the
store holds whole batches only, and running the same import id again skips the rows already
consumed and carries on. The progress update is the first statement of a batch and is
conditional on the progress the run expects, so two runs of one import id cannot both apply a
batch: the second is refused (ImportConflict). The last batch also marks the import DONE.

A fingerprint (a digest of the source) is stored with the claim; running the same id with
another fingerprint is refused, so a resume cannot skip rows of a different file.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.batching import batched
from service.clock import Clock, utc_now
from service.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from service.imports.batch import Batch, wanted
from service.imports.records import ParsedRow, RowError, quoted, require_key
from service.store.attributes_repo import load_attributes, write_attributes
from service.store.import_repo import (
    ImportState,
    advance_import,
    claim_import,
    hold_import,
    load_import,
)
from service.store.models import ChangeFeedRow
from service.store.sql import table_of

log = logging.getLogger(__name__)

KIND = "customer_attributes"
DEFAULT_BATCH_SIZE = 2000
MAX_BATCH_SIZE = 50_000
MAX_ERRORS = 1000  # rejected rows an outcome lists (all are counted)
PREFETCH_BATCHES = 2  # batches read ahead while one is written
FEED = table_of(ChangeFeedRow).name
FEED_COLUMNS = ("entity_kind", "entity_key", "created_at")


class ImportConflict(FailedPrecondition):
    """Another run of the same import id moved its progress first."""

    reason = "IMPORT_RUNNING_ELSEWHERE"


@dataclass(frozen=True, slots=True)
class ImportStart:
    state: ImportState
    replayed: bool  # already DONE: nothing to do
    skip: int  # rows of the source to skip (a resumed import)


@dataclass(frozen=True, slots=True)
class BatchApplied:
    """What a batch did: rows applied, rows rejected (in line order), members and cards whose
    cached state is now stale, events written."""

    applied: int
    errors: tuple[RowError, ...]
    member_ids: tuple[str, ...]
    card_numbers: tuple[str, ...]
    events: int


@dataclass(frozen=True, slots=True)
class BatchReport:
    """Reported after each committed batch (for progress, rejects files, cache eviction)."""

    rows: int
    applied: BatchApplied
    consumed: int  # rows of the source consumed so far, this batch included
    last_line: int


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    state: ImportState
    errors: tuple[RowError, ...]  # the first MAX_ERRORS rejected rows of this run
    replayed: bool
    resumed_from: int  # rows skipped because an earlier run had applied them


def check_import_id(import_id: str, field: str = "import_id") -> None:
    require_key(import_id, field)


def find_import(sessions: Sessions, import_id: str) -> ImportState | None:
    """Where the import of this id is, if there is one."""
    with sessions() as session:
        return load_import(session, import_id)


class AttributeImport:
    def __init__(
        self,
        sessions: Sessions,
        import_id: str,
        *,
        fingerprint: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Clock = utc_now,
        on_batch: Callable[[BatchReport], None] | None = None,
        on_committed: Callable[[list[str]], None] = lambda member_ids: None,
    ) -> None:
        """`on_committed`: this replica's cache hears the members each batch changed (the
        unit of work tells it); `on_batch` then gets the batch's report."""
        check_import_id(import_id)
        if fingerprint:
            require_key(fingerprint, "fingerprint")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}")
        self.import_id = import_id
        self._sessions = sessions
        self._fingerprint = fingerprint or None
        self._batch_size = batch_size
        self._clock = clock
        self._on_batch = on_batch
        self._on_committed = on_committed
        self._consumed = 0
        self._skipped = 0
        self._errors: list[RowError] = []

    def begin(self) -> ImportStart:
        """Claim the import id, or find where an earlier run of it got to."""
        with self._sessions() as session:
            claimed = claim_import(
                session, self.import_id, KIND, fingerprint=self._fingerprint, now=self._clock()
            )
            state = load_import(session, self.import_id)
            session.commit()
        assert state is not None
        if state.kind != KIND:
            raise AlreadyExists(
                f"import id {quoted(self.import_id)} belongs to an import of {state.kind}",
                reason="IMPORT_ID_REUSED",
            )
        if (
            not claimed
            and self._fingerprint is not None
            and state.fingerprint is not None
            and state.fingerprint != self._fingerprint
        ):
            raise AlreadyExists(
                f"import id {quoted(self.import_id)} was used for another source",
                reason="IMPORT_ID_REUSED",
            )
        self._consumed = self._skipped = state.consumed
        if not claimed:
            log.info(
                "import %s: %s, %d rows consumed before",
                self.import_id,
                state.status,
                state.consumed,
            )
        return ImportStart(state, replayed=state.done, skip=0 if state.done else state.consumed)

    def run(self, rows: Iterable[ParsedRow], *, prefetch: bool = True) -> ImportOutcome:
        """Apply every row (the caller has skipped the rows begin() said to skip).

        With `prefetch`, a reader thread reads and parses the next batches (at most
        PREFETCH_BATCHES ahead, so memory stays flat) while this thread writes one."""
        batches = batched(rows, self._batch_size)
        if prefetch:
            batches = _prefetched(batches, PREFETCH_BATCHES)
        pending: list[ParsedRow] | None = None
        for batch in batches:  # hold one back: the last batch also finishes the import
            if pending is not None:
                self._commit(pending, final=False)
            pending = batch
        self._commit(pending or [], final=True)
        with self._sessions() as session:
            state = load_import(session, self.import_id)
        assert state is not None
        return ImportOutcome(state, tuple(self._errors), False, self._skipped)

    def _commit(self, batch: list[ParsedRow], *, final: bool) -> None:
        now = self._clock()
        with UnitOfWork(self._sessions, self._on_committed, now=now) as uow:
            # First statement of a batch: holds the import's row until commit, and proves no
            # other run moved the progress since this run last did.
            if not hold_import(uow.session, self.import_id, self._consumed, now):
                raise ImportConflict(
                    f"import {quoted(self.import_id)} is being applied by another run; "
                    "run it again when that one has stopped to resume or see it done"
                )
            applied = apply_batch(uow, batch, import_id=self.import_id)
            advance_import(
                uow.session,
                self.import_id,
                rows=len(batch),
                applied=applied.applied,
                rejected=len(applied.errors),
                now=now,
                final=final,
            )
            uow.commit()
        self._consumed += len(batch)
        room = MAX_ERRORS - len(self._errors)
        if room > 0:
            self._errors.extend(applied.errors[:room])
        if self._on_batch is not None and (batch or final):
            last_line = batch[-1].line_number if batch else 0
            self._on_batch(BatchReport(len(batch), applied, self._consumed, last_line))


def apply_batch(uow: UnitOfWork, rows: Sequence[ParsedRow], *, import_id: str) -> BatchApplied:
    """Apply one batch in the unit of work: every row validated fully, by its builder when it
    was read and then against the store (service.imports.batch), before anything of it is
    written; a rejected row changes nothing. The batch's members are locked first; the unit
    of work patches their documents (all alike, together), writes their feed rows and events
    as it commits, then tells the cache."""
    errors = [row.error for row in rows if row.error is not None]
    valid = [(row.line_number, row.record) for row in rows if row.record is not None]
    records = [record for _line, record in valid]
    # Member locks before the row locks load_attributes takes (the one lock order).
    uow.lock_members(record.member_id for record in records)
    batch = Batch(load_attributes(uow.session, **wanted(records)), import_id)
    applied = 0
    for line_number, record in valid:
        try:
            batch.apply(record)
        except InvalidArgument as error:
            errors.append(RowError(line_number, error.field, error.description))
        else:
            applied += 1
    write_attributes(uow.session, batch.writes(), import_id=import_id, now=uow.now)
    touched = batch.touched_members
    uow.patch_members(touched, batch.document_patch(), new=batch.created_members)
    events = batch.events()
    for member_id, event_type, payload in events:
        uow.add_event(member_id, event_type, payload)
    errors.sort(key=lambda e: e.line_number)
    return BatchApplied(
        applied=applied,
        errors=tuple(errors),
        member_ids=tuple(touched),
        card_numbers=tuple(batch.changed_cards),
        events=len(events),
    )


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


def _prefetched(batches: Iterator[list[ParsedRow]], depth: int) -> Iterator[list[ParsedRow]]:
    """The same batches, produced by a reader thread at most `depth` ahead. An error of the
    reader is raised here; when the consumer stops early, the reader stops after its batch."""
    handoff: queue.Queue[list[ParsedRow] | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: list[ParsedRow] | _End) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_End())
        except BaseException as error:  # handed to the consumer, raised there
            put(_End(error))

    reader = threading.Thread(target=read, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        # A reader waiting on a slow source (a client's stream) notices `stop` after its next
        # row; it is a daemon thread, so do not hold the caller's answer for it.
        reader.join(timeout=0.2)
