"""The member a receipt or a request names, by card number or member id; and the limit that
keeps card numbers from being tried at speed.

A card number that names no member is a *miss*. Each credential may miss `burst` times, and
then once per 1 / `per_second` seconds (a token bucket). A credential out of misses gets
RESOURCE_EXHAUSTED with RetryInfo for every card lookup, hits included, until its bucket
refills: refusing only the misses would still tell an enumerator which cards exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import LRUCache

from loyalty.v1 import common_pb2
from service import limits
from service.api.auth import current_principal
from service.cache.state import BenefitCache
from service.config import Settings
from service.engine.model import Member
from service.errors import InvalidArgument, NotFound, TooManyRequests
from service.limits import check_length

# Buckets kept at once; a credential beyond it is forgotten with a full bucket, which a
# stranger cannot exploit: only authenticated credentials reach a lookup.
BUCKETS = 65_536


class MissLimiter:
    """A token bucket of misses per credential: unknown card numbers, or unknown coupon codes
    (`what` names them in the refusal, `reason` is its ErrorInfo reason)."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        what: str = "unknown card numbers",
        reason: str = "CARD_LOOKUPS_LIMITED",
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.what = what
        self.reason = reason
        self._clock = clock
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(BUCKETS)  # tokens, at
        self._lock = threading.Lock()

    def admit(self, key: str) -> None:
        """Raise TooManyRequests while `key` has no miss left."""
        if key not in self._buckets:  # never missed, or refilled long ago: the common case
            return
        with self._lock:
            tokens = self._refilled(key)
        if tokens < 1:
            wait = (1 - tokens) / self.per_second
            raise TooManyRequests(
                f"too many {self.what}; retry in {wait:.1f} s",
                reason=self.reason,
                retry_after_s=wait,
            )

    def miss(self, key: str, count: int = 1) -> None:
        with self._lock:
            self._buckets[key] = (self._refilled(key) - count, self._clock())

    def _refilled(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), 0.0))
        now = self._clock()
        return min(float(self.burst), tokens + (now - at) * self.per_second) if at else tokens


def check_identity(identity: common_pb2.MemberIdentity, field: str) -> None:
    check_length(identity.card_number, limits.CARD, f"{field}.card_number")
    check_length(identity.member_id, limits.ID, f"{field}.member_id")


class MemberLookup:
    def __init__(self, cache: BenefitCache, misses: MissLimiter) -> None:
        self._cache = cache
        self._misses = misses

    @classmethod
    def from_settings(cls, cache: BenefitCache, settings: Settings) -> MemberLookup:
        limiter = MissLimiter(settings.card_miss_rate_per_s, settings.card_miss_burst)
        return cls(cache, limiter)

    def resolve(self, identity: common_pb2.MemberIdentity, field: str) -> Member | None:
        """The member a card or member id names; None for an anonymous buyer (no identity)."""
        which = identity.WhichOneof("id")
        if which is None:
            return None
        check_identity(identity, field)
        if which == "card_number":
            member = self._by_card(identity.card_number, f"{field}.card_number")
        else:
            if not identity.member_id:
                raise InvalidArgument(f"{field}.member_id", "must not be empty")
            member = self._cache.member(identity.member_id)
        if member is None:
            raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
        return member

    def _by_card(self, card_number: str, field: str) -> Member | None:
        if not card_number:
            raise InvalidArgument(field, "must not be empty")
        caller = current_principal().credential_id
        self._misses.admit(caller)
        found = self._cache.member_for_card(card_number)
        if found is None:
            self._misses.miss(caller)
            raise NotFound("no member has this card", reason="CARD_NOT_FOUND")
        return found[1]
