"""Confirmation tokens: the result a customer was shown, signed so any replica can confirm it.

A token is `version (1 byte) | key id length (1 byte) | key id | HMAC-SHA256 (32 bytes) |
ConfirmationTokenPayload`, the MAC taken over everything but itself. Nothing about a
calculation lives in one process's memory, and a result altered on the way (or a receipt
whose content changed since the calculation) fails verification.

The version says how the payload's receipt fingerprint was taken: format 2 over a sorted copy
of the receipt with the token's sale time (convert.receipt_fingerprint), format 3 over the
receipt without its sale time, in line order, hashed as sent when it is in that form already
(convert.token_fingerprint: no copy on Calculate). Both verify; `token_format` says which one
signs, so a rolling upgrade signs 2 until every replica reads 3 (docs/security.md).

Keys rotate without refusing tokens in flight: the current key signs; the previous one, named
by its key id, still verifies until a configured time (docs/security.md, "Rotating the token
key"). A token also expires (`token_ttl_s`, 24 h by default): the register calculates again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf import timestamp_pb2

from loyalty.v1 import receipt_pb2, token_pb2
from service.api.convert import receipt_fingerprint, set_timestamp, token_fingerprint
from service.api.coupon_convert import add_redeemed
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine.coupons import Redemption
from service.engine.model import UsageCharge
from service.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

FORMATS = (2, 3)  # the versions this code verifies; Settings.token_format picks the one signed
CURRENT_FORMAT = 3
MAC_SIZE = 32
MAX_KEY_ID = 16
MIN_SECRET_BYTES = 32
# Public, so it signs nothing outside development mode (docs/security.md).
DEVELOPMENT_SECRET = "dev-only-change-me"
DEFAULT_TTL = timedelta(hours=24)


class UnsafeConfiguration(ValueError):
    """The server refuses to start: the one line says what to set."""


@dataclass(frozen=True)
class TokenKey:
    key_id: str
    secret: str
    until: datetime | None = None  # a previous key verifies until then; None: no end

    def __post_init__(self) -> None:
        if not 0 < len(self.key_id) <= MAX_KEY_ID or not self.key_id.isascii():
            raise UnsafeConfiguration(f"a token key id is 1 to {MAX_KEY_ID} ASCII characters")

    def mac_key(self) -> bytes:
        return hashlib.sha256(b"loyalty-confirmation-token|" + self.secret.encode()).digest()


class TokenSigner:
    def __init__(
        self,
        current: TokenKey | str,
        previous: Sequence[TokenKey] = (),
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock = utc_now,
        token_format: int = CURRENT_FORMAT,
    ) -> None:
        if isinstance(current, str):
            current = TokenKey("1", current)
        if token_format not in FORMATS:
            raise UnsafeConfiguration(f"--token-format is one of {FORMATS}")
        self._current = current
        self._format = token_format
        self._header = bytes([token_format, len(current.key_id)]) + current.key_id.encode()
        self._mac_keys = {key.key_id: key.mac_key() for key in (*previous, current)}
        self._until = {key.key_id: key.until for key in previous}
        self._ttl = ttl
        self._clock = clock

    def sign(
        self,
        receipt: receipt_pb2.Receipt,
        result: receipt_pb2.ReceiptResult,
        usage: tuple[UsageCharge, ...],
        coupons: Sequence[Redemption] = (),
    ) -> bytes:
        payload = token_pb2.ConfirmationTokenPayload()
        payload.receipt_fingerprint = _fingerprint(self._format, receipt, result.sale_time)
        payload.chips_granted = result.total_chips
        payload.chips_spent = result.total_chips_spent
        for charge in usage:
            entry = payload.usage.add()
            entry.offer_id = charge.offer_id
            entry.period_key = charge.period_key
            entry.used = charge.used
        add_redeemed(payload, coupons)
        set_timestamp(payload.expires_at, _expiry(self._clock(), self._ttl))
        # The result goes in encoded, after the other fields: a parser reads a field wherever
        # it comes, and the payload does not have to copy the whole result first.
        body = payload.SerializeToString(deterministic=True) + _result_field(result)
        mac = hmac.digest(self._mac_keys[self._current.key_id], self._header + body, "sha256")
        return self._header + mac + body

    def verify(
        self, receipt: receipt_pb2.Receipt, token: bytes
    ) -> token_pb2.ConfirmationTokenPayload:
        """The payload, if the token is ours, unaltered, unexpired and made for this very
        receipt."""
        payload, stale = self.open(receipt, token)
        if stale is not None:
            raise stale
        return payload

    def open(
        self, receipt: receipt_pb2.Receipt, token: bytes
    ) -> tuple[token_pb2.ConfirmationTokenPayload, FailedPrecondition | None]:
        """The payload of a token that is ours, unaltered and made for this very receipt, and
        why it may no longer commit anything new (expired, or its key retired), if so: a
        confirm already made is still answered with such a token."""
        header, mac, body = _split(token)
        key_id = header[2:].decode("ascii", errors="replace")
        mac_key = self._mac_keys.get(key_id)
        if mac_key is None or not hmac.compare_digest(
            mac, hmac.digest(mac_key, header + body, "sha256")
        ):
            raise InvalidArgument(
                "confirmation_token",
                "not signed by this service or altered",
                reason="TOKEN_INVALID",
            )
        payload = token_pb2.ConfirmationTokenPayload.FromString(body)
        expected = _fingerprint(header[0], receipt, payload.result.sale_time)
        if not hmac.compare_digest(expected, payload.receipt_fingerprint):
            raise InvalidArgument(
                "confirmation_token",
                "the receipt differs from the one calculated; calculate again",
                reason="TOKEN_RECEIPT_MISMATCH",
            )
        if payload.result.receipt_id != receipt.receipt_id:
            raise InvalidArgument("confirmation_token", "made for another receipt id")
        return payload, self._staleness(key_id, payload)

    def _staleness(
        self, key_id: str, payload: token_pb2.ConfirmationTokenPayload
    ) -> FailedPrecondition | None:
        now = self._clock()
        until = self._until.get(key_id)
        if until is not None and now > until:
            return _expired("its signing key was retired")
        if now > payload.expires_at.ToDatetime(UTC):
            return _expired("it expired")
        return None


def _expiry(now: datetime, ttl: timedelta) -> datetime:
    """now + ttl, or the last moment a datetime holds for a clock near year 9999."""
    try:
        return now + ttl
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


_RESULT_TAG = bytes([2 << 3 | 2])  # ConfirmationTokenPayload.result: field 2, length-delimited


def _result_field(result: receipt_pb2.ReceiptResult) -> bytes:
    encoded = result.SerializeToString(deterministic=True)
    return _RESULT_TAG + _varint(len(encoded)) + encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fingerprint(
    token_format: int, receipt: receipt_pb2.Receipt, sale_time: timestamp_pb2.Timestamp
) -> bytes:
    if token_format == 3:
        return token_fingerprint(receipt)
    return receipt_fingerprint(receipt, sale_time)


def _split(token: bytes) -> tuple[bytes, bytes, bytes]:
    """(header, MAC, body) of a well-formed token; the header ends with the key id."""
    if len(token) > 2 and token[0] in FORMATS:
        id_end = 2 + token[1]
        if 0 < token[1] <= MAX_KEY_ID and len(token) > id_end + MAC_SIZE:
            return token[:id_end], token[id_end : id_end + MAC_SIZE], token[id_end + MAC_SIZE :]
    raise InvalidArgument("confirmation_token", "missing or malformed; calculate first")


def _expired(why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the confirmation token is no longer valid ({why}); calculate the receipt again",
        reason="TOKEN_EXPIRED",
    )


# --- from the settings ---------------------------------------------------------------------------


def signer_from_settings(settings: Settings, clock: Clock = utc_now) -> TokenSigner:
    """The signer the settings describe; UnsafeConfiguration (one line) for a secret that
    would let a register mint points: missing, the public development one, or short."""
    secret = _secret(settings.token_secret, settings.token_secret_file, "token-secret")
    if not secret and settings.development_mode:
        log.info("development mode: confirmation tokens signed with the public dev secret")
        secret = DEVELOPMENT_SECRET
    elif not settings.development_mode:
        _require_strong(secret, "token-secret")
    current = TokenKey(settings.token_key_id, secret)
    return TokenSigner(
        current,
        _previous_keys(settings),
        ttl=timedelta(seconds=settings.token_ttl_s),
        clock=clock,
        token_format=settings.token_format,
    )


def _previous_keys(settings: Settings) -> tuple[TokenKey, ...]:
    secret = _secret(
        settings.token_previous_secret, settings.token_previous_secret_file, "token-previous-secret"
    )
    if not secret:
        return ()
    if not settings.development_mode:
        _require_strong(secret, "token-previous-secret")
    if not settings.token_previous_key_id or not settings.token_previous_until:
        raise UnsafeConfiguration(
            "a previous token secret needs --token-previous-key-id and --token-previous-until"
        )
    if settings.token_previous_key_id == settings.token_key_id:
        raise UnsafeConfiguration("the previous token key needs a key id of its own")
    return (
        TokenKey(settings.token_previous_key_id, secret, _until(settings.token_previous_until)),
    )


def _secret(value: str, path: str, flag: str) -> str:
    if value and path:
        raise UnsafeConfiguration(f"give --{flag} or --{flag}-file, not both")
    if not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UnsafeConfiguration(f"cannot read --{flag}-file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UnsafeConfiguration(f"--{flag}-file {path!r} is not UTF-8 text") from None


def _require_strong(secret: str, flag: str) -> None:
    if not secret:
        raise UnsafeConfiguration(
            f"no token secret: give --{flag}-file (or LOYALTY_{flag.upper().replace('-', '_')}"
            f"_FILE) with at least {MIN_SECRET_BYTES} random bytes, the same on every replica;"
            " --development allows a built-in one for local use"
        )
    if secret == DEVELOPMENT_SECRET:
        raise UnsafeConfiguration(f"--{flag} is the public development secret")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise UnsafeConfiguration(f"--{flag} is shorter than {MIN_SECRET_BYTES} bytes")


def _until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UnsafeConfiguration(
            "--token-previous-until is an ISO 8601 time with an offset (2026-12-03T00:00:00Z)"
        )
    return moment
