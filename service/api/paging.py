"""Page tokens of the back office's List calls (spec §17.1).

A token carries the last key of the page it follows and a digest of the request's filters,
so the next page continues in key order (keyset paging: no OFFSET, and items written between
two pages are neither skipped nor repeated before the cursor) and a token sent with other
filters is refused rather than silently answering another question.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from loyalty.v1 import backoffice_pb2
from service import limits
from service.errors import InvalidArgument
from service.limits import check_length

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class PageCursor:
    size: int
    after: str | None
    filters: str  # digest of the request without its page


def _filters_digest(request: Message) -> str:
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("page")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:16]


def cursor(request: Any) -> PageCursor:
    """The page a List request asks for; INVALID_ARGUMENT for a bad size or token."""
    page: backoffice_pb2.PageRequest = request.page
    if not 0 <= page.page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            "page.page_size", f"from 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}"
        )
    size = page.page_size or DEFAULT_PAGE_SIZE
    filters = _filters_digest(request)
    token = check_length(page.page_token, limits.PAGE_TOKEN, "page.page_token")
    if not token:
        return PageCursor(size, None, filters)
    try:
        after, digest = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise InvalidArgument("page.page_token", "not a token this service gave") from None
    if not isinstance(after, str) or digest != filters:
        raise InvalidArgument(
            "page.page_token", "belongs to another list or other filters: start again without it"
        )
    return PageCursor(size, after, filters)


def next_token(page: PageCursor, last_key: str) -> str:
    raw = json.dumps([last_key, page.filters], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def paged(
    page: PageCursor, read: Callable[[int, str | None], Sequence[T]], key: Callable[[T], str]
) -> tuple[Sequence[T], str]:
    """One page of items and the token of the next ("" after the last): `read(limit, after)`
    is asked for one item more than the page, to learn whether another page follows."""
    items = read(page.size + 1, page.after)
    if len(items) <= page.size:
        return items, ""
    items = items[: page.size]
    return items, next_token(page, key(items[-1]))
