"""Batching, the one home: fixed-size slices of a sequence (`chunks`, e.g. ids for an IN
list) and of a stream (`batched`, e.g. rows of an import, members of a job), in order, the
last one shorter. Paging through a table by key is service.store.sql.keyset_pages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Slices of at most `size` items of a sequence."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of at most `size` items of an iterable, read as they are needed (a stream of
    millions of rows stays one batch in memory)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
