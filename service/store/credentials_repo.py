"""API credentials: one per client (a register, an app backend, an operator, a back office).

A token is `<credential id>.<secret>`; only SHA-256 of the secret is stored. Secrets are 32
random bytes, so a fast hash is enough (nothing to brute-force), and verification compares
hashes in constant time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.store.feed import EntityKind, append_changes
from service.store.models import ApiCredentialRow

ROLES = ("REGISTER", "CUSTOMER_SERVICES", "OPERATOR", "BACK_OFFICE")


@dataclass(frozen=True, slots=True)
class StoredCredential:
    id: str
    name: str
    role: str
    secret_hash: str
    store_ids: frozenset[str]
    revoked: bool


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_credential(
    session: Session,
    *,
    name: str,
    role: str,
    store_ids: tuple[str, ...] = (),
    all_stores: bool = False,
    credential_id: str | None = None,
    secret: str | None = None,
    now: datetime | None = None,
) -> str:
    """Store a new credential and return its token (shown once, never stored).

    A REGISTER acts for the stores it names; one for every store must say so (`all_stores`),
    so that a till's credential that leaks cannot act for the whole chain by an omission."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "REGISTER" and not store_ids and not all_stores:
        raise ValueError("a REGISTER credential names its stores, or is for all stores explicitly")
    if role != "REGISTER" and (store_ids or all_stores):
        raise ValueError("only a REGISTER credential is bound to stores")
    if store_ids and all_stores:
        raise ValueError("name stores, or all stores, not both")
    credential_id = credential_id or secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(32)
    session.add(
        ApiCredentialRow(
            id=credential_id,
            name=name,
            role=role,
            secret_hash=hash_secret(secret),
            store_ids=list(store_ids),
            created_at=now or utc_now(),
            revoked_at=None,
        )
    )
    append_changes(session, EntityKind.CREDENTIAL, [credential_id], now)
    return f"{credential_id}.{secret}"


def revoke_credential(session: Session, credential_id: str, now: datetime | None = None) -> bool:
    """Revoke; True if a live credential was revoked."""
    result = session.execute(
        update(ApiCredentialRow)
        .where(ApiCredentialRow.id == credential_id, ApiCredentialRow.revoked_at.is_(None))
        .values(revoked_at=now or utc_now())
    )
    append_changes(session, EntityKind.CREDENTIAL, [credential_id], now)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def credential_exists(session: Session, credential_id: str) -> bool:
    return session.get(ApiCredentialRow, credential_id) is not None


def load_credentials(session: Session) -> dict[str, StoredCredential]:
    rows = session.execute(select(ApiCredentialRow)).scalars()
    return {
        r.id: StoredCredential(
            r.id,
            r.name,
            r.role,
            r.secret_hash,
            frozenset(r.store_ids or ()),
            r.revoked_at is not None,
        )
        for r in rows
    }
