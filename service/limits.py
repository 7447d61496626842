"""How long each kind of string a caller sends may be: the one table for the API checks, the
engine's receipt validation, the attribute import and the store's column widths (models.py).

A value is checked against its limit before it is used (looked up, stored, logged or quoted in
a message), so no caller can make the service store, log or echo a megabyte. Messages that
quote what the caller sent quote at most a short prefix (`quote`), and a status message is
cut at MESSAGE characters, so a status always fits the trailer.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.errors import InvalidArgument

ID = 64  # ids (receipts, lines, stores, members, offers, groups, refunds...), SKUs, tags
CARD = 32  # card numbers (cards.card_number)
NAME = 200  # names, benefit texts, an import's source
ZONE = ID  # IANA time zone names (stores.time_zone)
COMMENT = 1000  # an operator's comment on an audited edit
PAGE_TOKEN = 512  # a List call's page token (a key of up to ID characters, a digest)

POINTS = 10**12  # bonus points a request may name (more is a typo, not a balance)
CHIPS = 10**12  # chips a request may name, likewise

QUOTE = 32  # characters of a caller's value a message quotes
MESSAGE = 512  # characters of a status message at most


def quote(value: str, limit: int = QUOTE) -> str:
    """A Python literal of the value for a message (control characters and lone surrogates
    escaped), at most `limit` characters of it: 'M0001', or 'XXXXXXXX…' for a longer one."""
    shown = repr(value[:limit])
    return shown[:-1] + "…" + shown[-1] if len(value) > limit else shown


def shorten(value: str, limit: int) -> str:
    """At most `limit` characters of the text, '...' marking a cut (for logs and statuses)."""
    return value if len(value) <= limit else value[: max(limit - 3, 0)] + "..."


def check_length(value: str, limit: int, field: str) -> str:
    """The value, if it has at most `limit` characters; else INVALID_ARGUMENT on `field`."""
    if len(value) > limit:
        raise InvalidArgument(field, f"at most {limit} characters")
    return value


def check_each(values: Iterable[str], limit: int, field: str) -> None:
    """check_length of each value of a repeated field, named `field[i]`."""
    for index, value in enumerate(values):
        if len(value) > limit:
            raise InvalidArgument(f"{field}[{index}]", f"at most {limit} characters")
