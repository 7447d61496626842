"""When an offer, a member's terms or a personalized offer is valid (spec §4): the half-open
interval [valid_from, valid_to), an unset end being open. The one home of the rule for the
member's side (lookups, selections, jobs); the calculation checks the same interval on its
compiled rules in epoch microseconds (rules.py, eligibility.py)."""

from __future__ import annotations

from datetime import datetime

from service.errors import FailedPrecondition


def valid_at(valid_from: datetime | None, valid_to: datetime | None, at: datetime) -> bool:
    """valid_from <= at < valid_to."""
    return (valid_from is None or valid_from <= at) and (valid_to is None or at < valid_to)


def has_ended(valid_to: datetime | None, at: datetime) -> bool:
    return valid_to is not None and at >= valid_to


def check_offer_open(valid_to: datetime | None, now: datetime) -> None:
    """A selection may be made until the offer ends (also before it starts, so members can
    prepare); after the end FAILED_PRECONDITION OFFER_ENDED."""
    if has_ended(valid_to, now):
        raise FailedPrecondition("the offer has ended", reason="OFFER_ENDED")
