"""Confirmation tokens: the result a customer was shown, signed so any replica can confirm it.

A token is `version (1 byte) | HMAC-SHA256 (32 bytes) | ConfirmationTokenPayload`. Nothing
about a calculation lives in one process's memory, and a result altered on the way (or a
receipt whose content changed since the calculation) fails verification.
"""

from __future__ import annotations

import hashlib
import hmac

from loyalty.v1 import receipt_pb2, token_pb2
from service.engine.model import UsageCharge
from service.errors import InvalidArgument

VERSION = b"\x01"
MAC_SIZE = 32


def receipt_fingerprint(receipt: receipt_pb2.Receipt, sale_time_seconds: int, nanos: int) -> bytes:
    """SHA-256 of the receipt's content: id, store, channel, member, sale time, lines by id.
    The order of lines does not matter; the sale time is the one the receipt was evaluated at."""
    canonical = receipt_pb2.Receipt()
    canonical.CopyFrom(receipt)
    canonical.sale_time.seconds = sale_time_seconds
    canonical.sale_time.nanos = nanos
    lines = sorted(canonical.lines, key=lambda line: line.line_id)
    del canonical.lines[:]
    canonical.lines.extend(lines)
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).digest()


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"loyalty-confirmation-token|" + secret.encode()).digest()

    def sign(
        self,
        receipt: receipt_pb2.Receipt,
        result: receipt_pb2.ReceiptResult,
        usage: tuple[UsageCharge, ...],
    ) -> bytes:
        payload = token_pb2.ConfirmationTokenPayload()
        payload.receipt_fingerprint = receipt_fingerprint(
            receipt, result.sale_time.seconds, result.sale_time.nanos
        )
        payload.result.CopyFrom(result)
        for charge in usage:
            entry = payload.usage.add()
            entry.offer_id = charge.offer_id
            entry.period_key = charge.period_key
            entry.used = charge.used
        body = payload.SerializeToString(deterministic=True)
        return VERSION + hmac.digest(self._key, body, "sha256") + body

    def verify(
        self, receipt: receipt_pb2.Receipt, token: bytes
    ) -> token_pb2.ConfirmationTokenPayload:
        """The payload, if the token is ours, unaltered and made for this very receipt."""
        if len(token) <= 1 + MAC_SIZE or token[:1] != VERSION:
            raise InvalidArgument("confirmation_token", "missing or malformed; calculate first")
        mac, body = token[1 : 1 + MAC_SIZE], token[1 + MAC_SIZE :]
        if not hmac.compare_digest(mac, hmac.digest(self._key, body, "sha256")):
            raise InvalidArgument(
                "confirmation_token",
                "not signed by this service or altered",
                reason="TOKEN_INVALID",
            )
        payload = token_pb2.ConfirmationTokenPayload.FromString(body)
        expected = receipt_fingerprint(
            receipt, payload.result.sale_time.seconds, payload.result.sale_time.nanos
        )
        if not hmac.compare_digest(expected, payload.receipt_fingerprint):
            raise InvalidArgument(
                "confirmation_token",
                "the receipt differs from the one calculated; calculate again",
                reason="TOKEN_RECEIPT_MISMATCH",
            )
        if payload.result.receipt_id != receipt.receipt_id:
            raise InvalidArgument("confirmation_token", "made for another receipt id")
        return payload
