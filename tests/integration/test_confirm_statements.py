"""What one confirm costs the store, counted on a real SQLite file and a real PostgreSQL: the
statements it sends and the transactions it opens (docs/operations.md, "Confirms")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select

from service.api.tokens import TokenSigner
from service.demo_data.generate import WELCOME_CODE
from service.store.models import CouponCampaignRow, CouponRedemptionRow
from tests.integration.receipt_support import (
    SETTINGS,
    SHOWCASE_MEMBER,
    Register,
    coupon_receipt,
    row_counts,
    showcase_receipt,
    usage_of,
)

# The showcase receipt counts usage (P-COFFEE), accrues points from two offers and grants
# chips: claim + stored record, lines, benefits, member lock (PostgreSQL), chips upsert and
# its ledger row, usage counter, ledger accrual, history, member document read, open lots
# read, the new lot, record, document write, change feed.
MOST_STATEMENTS = 16


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0


@contextmanager
def traffic_of(register: Register) -> Iterator[Traffic]:
    engine: Any = register.sessions.kw["bind"]  # type: ignore[attr-defined]
    seen = Traffic()

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        verb = sql.split(None, 1)[0].upper()
        if verb not in ("BEGIN", "PRAGMA"):  # SQLite's own transaction control
            seen.statements.append(verb)

    def begin(_conn: object) -> None:
        seen.begins += 1

    def commit(_conn: object) -> None:
        seen.commits += 1

    listeners = [("before_cursor_execute", statement), ("begin", begin), ("commit", commit)]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def test_a_confirm_with_usage_and_points_makes_at_most_n_statements_in_one_transaction(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-COUNTED")
    shown = register.calculate(receipt)
    payload = TokenSigner(SETTINGS.token_secret).verify(receipt, shown.confirmation_token)
    assert payload.usage and shown.result.total_points and shown.result.total_chips

    with traffic_of(register) as seen:
        confirmed = register.confirm(receipt, shown.confirmation_token)

    assert not confirmed.replayed
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 1000  # really written
    assert (seen.begins, seen.commits) == (1, 1)
    assert len(seen.statements) <= MOST_STATEMENTS, seen.statements


def test_a_repeated_confirm_sends_no_more_than_a_new_one_and_rolls_it_all_back(
    register: Register,
) -> None:
    """A repeat sends the confirm's writes with its claim (they go in one round trip) and,
    the claim refused, rolls them back: the store is as the first confirm left it."""
    receipt = showcase_receipt("R-COUNTED-TWICE")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    register.cache.member(SHOWCASE_MEMBER)  # the confirm made the cache read them again
    before = row_counts(register.sessions)

    with traffic_of(register) as seen:
        again = register.confirm(receipt, token)

    assert again.replayed and again.result == first.result
    assert seen.statements[:2] == ["INSERT", "SELECT"]  # the claim and the stored record
    assert len(seen.statements) <= MOST_STATEMENTS, seen.statements
    assert (seen.begins, seen.commits) == (1, 0)  # rolled back: it wrote nothing
    assert row_counts(register.sessions) == before
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 1000


def test_a_resent_repeat_is_answered_by_its_claim_and_one_read(register: Register) -> None:
    """A request that says it was sent before looks for the earlier confirm first."""
    receipt = showcase_receipt("R-RESENT")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    register.cache.member(SHOWCASE_MEMBER)

    with traffic_of(register) as seen:
        again = register.confirm(receipt, token, resent=True)

    assert again.replayed and again.result == first.result
    assert seen.statements == ["INSERT", "SELECT"]
    assert (seen.begins, seen.commits) == (1, 0)


def test_a_resent_confirm_never_seen_before_commits_as_any_other(register: Register) -> None:
    receipt = showcase_receipt("R-RESENT-NEW")
    token = register.calculate(receipt).confirmation_token

    with traffic_of(register) as seen:
        confirmed = register.confirm(receipt, token, resent=True)

    assert not confirmed.replayed
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 1000
    assert (seen.begins, seen.commits) == (1, 1)
    assert len(seen.statements) <= MOST_STATEMENTS, seen.statements


def test_a_repeat_of_a_confirm_with_a_coupon_counts_the_code_once(register: Register) -> None:
    """Its first round trip counts the code's use and inserts its redemption again; both are
    rolled back (the redemption left as it is)."""
    receipt = coupon_receipt(register, "R-COUPON-TWICE")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    assert _welcome_uses(register) == (1, 1)

    again = register.confirm(receipt, token)

    assert again.replayed and again.result == first.result
    assert _welcome_uses(register) == (1, 1)


def _welcome_uses(register: Register) -> tuple[int, int]:
    """The demo code's use counter and its redemptions."""
    with register.sessions() as session:
        used = session.scalar(
            select(CouponCampaignRow.used).where(CouponCampaignRow.shared_code == WELCOME_CODE)
        )
        redeemed = session.scalar(
            select(func.count()).where(CouponRedemptionRow.code == WELCOME_CODE)
        )
    return int(used or 0), int(redeemed or 0)
