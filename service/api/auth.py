"""Who is calling, and may they call this method.

Every call but health (and reflection, when it is on) carries `authorization: Bearer <token>`.
The call interceptor authenticates it against the credential book and checks the method's
roles before the handler runs; handlers read the caller with `current_principal()`.
"""

from __future__ import annotations

import enum
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.errors import PermissionDenied, Unauthenticated
from service.limits import quote
from service.store.credentials_repo import (
    StoredCredential,
    create_credential,
    credential_exists,
    hash_secret,
    load_credentials,
)

if TYPE_CHECKING:  # types only: the api reaches the store through its functions
    from sqlalchemy.orm import Session


class Role(enum.Enum):
    REGISTER = "REGISTER"
    CUSTOMER_SERVICES = "CUSTOMER_SERVICES"
    OPERATOR = "OPERATOR"
    BACK_OFFICE = "BACK_OFFICE"


@dataclass(frozen=True, slots=True)
class Principal:
    credential_id: str
    name: str
    role: Role
    store_ids: frozenset[str] = frozenset()  # REGISTER: the stores it may act for; empty: any

    def check_store(self, store_id: str, receipt_id: str = "") -> None:
        """May this caller act for the store? Also notes the store (and the receipt the call
        is about) for the call log."""
        _store.set(store_id)
        if receipt_id:
            _receipt.set(receipt_id)
        if self.store_ids and store_id not in self.store_ids:
            raise PermissionDenied(
                f"credential {quote(self.name)} may not act for store {quote(store_id)}",
                reason="STORE_NOT_ALLOWED",
            )


_R, _C, _O, _B = Role.REGISTER, Role.CUSTOMER_SERVICES, Role.OPERATOR, Role.BACK_OFFICE

# Method -> roles that may call it. A loyalty method missing here is refused for everyone.
METHOD_ROLES: dict[str, frozenset[Role]] = {
    "/loyalty.v1.ReceiptService/Calculate": frozenset({_R}),
    "/loyalty.v1.ReceiptService/Confirm": frozenset({_R}),
    "/loyalty.v1.ReceiptService/Refund": frozenset({_R}),
    "/loyalty.v1.TillSessionService/Session": frozenset({_R}),
    "/loyalty.v1.MemberService/GetMemberOffers": frozenset({_R, _C, _O}),
    # An operator (CRM, call centre) can do what customer services do, and edit favorites.
    "/loyalty.v1.MemberService/SelectFavoriteProducts": frozenset({_C, _O}),
    "/loyalty.v1.MemberService/SelectFavoriteCategories": frozenset({_C, _O}),
    "/loyalty.v1.MemberService/OperatorSetFavoriteProducts": frozenset({_O}),
    "/loyalty.v1.MemberService/ListFavoriteProductsAudit": frozenset({_O}),
    # Members one by one: the CRM screen, the call centre and the back office.
    "/loyalty.v1.MemberService/GetMemberProfile": frozenset({_C, _O, _B}),
    "/loyalty.v1.MemberService/UpsertMemberProfile": frozenset({_C, _O, _B}),
    "/loyalty.v1.MemberService/AddMemberCard": frozenset({_C, _O, _B}),
    "/loyalty.v1.MemberService/BlockMemberCard": frozenset({_C, _O, _B}),
    "/loyalty.v1.NotificationService/StreamMemberEvents": frozenset({_C, _B}),
    "/loyalty.v1.NotificationService/AckMemberEvents": frozenset({_C, _B}),
    "/loyalty.v1.CampaignReplayService/Replay": frozenset({_B}),
    "/loyalty.v1.CouponService/UpsertCouponCampaign": frozenset({_B}),
    "/loyalty.v1.CouponService/GenerateCouponCodes": frozenset({_B}),
    "/loyalty.v1.CouponService/ImportCouponCodes": frozenset({_B}),
    "/loyalty.v1.CouponService/GetCouponCampaign": frozenset({_B}),
    "/loyalty.v1.CouponService/ListCouponCampaigns": frozenset({_B}),
}
BACK_OFFICE_PREFIX = "/loyalty.v1.BackOfficeService/"
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_current: ContextVar[Principal | None] = ContextVar("principal", default=None)
_store: ContextVar[str] = ContextVar("call_store", default="")
_receipt: ContextVar[str] = ContextVar("call_receipt", default="")


def call_store() -> str:
    """The store the current call acts for, once a handler has checked it ("" before)."""
    return _store.get()


def call_receipt() -> str:
    """The receipt the current call is about, once a handler has checked its store."""
    return _receipt.get()


def current_principal() -> Principal:
    """The authenticated caller of the call this thread is serving."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def set_current_principal(principal: Principal | None) -> None:
    _current.set(principal)
    _store.set("")
    _receipt.set("")


def roles_for(method: str) -> frozenset[Role] | None:
    """None: no authentication needed (health, reflection)."""
    if method.startswith(PUBLIC_PREFIXES):
        return None
    if method.startswith(BACK_OFFICE_PREFIX):
        return frozenset({_B})
    return METHOD_ROLES.get(method, frozenset())


class CredentialBook:
    """Credentials in memory; reloaded when the change feed says one changed, or when an
    unknown credential id shows up (at most once a second, so garbage cannot hammer the store)."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._by_id: Mapping[str, StoredCredential] = {}
        self._lock = threading.Lock()
        self._last_reload = 0.0

    def reload(self) -> None:
        with self._session_factory() as session:
            loaded = load_credentials(session)
        self._by_id = loaded
        self._last_reload = time.monotonic()

    def _lookup(self, credential_id: str) -> StoredCredential | None:
        found = self._by_id.get(credential_id)
        if found is None and time.monotonic() - self._last_reload > 1.0:
            with self._lock:
                if time.monotonic() - self._last_reload > 1.0:
                    self.reload()
            found = self._by_id.get(credential_id)
        return found

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("missing credential: send 'authorization: Bearer <token>'")
        credential_id, _, secret = authorization[7:].strip().partition(".")
        stored = self._lookup(credential_id) if secret else None
        # Hash and compare even for an unknown id, so timing does not tell ids apart.
        expected = stored.secret_hash if stored is not None else hash_secret("\x00")
        valid = hmac.compare_digest(hash_secret(secret), expected)
        if stored is None or not valid or stored.revoked:
            raise Unauthenticated("invalid or revoked credential", reason="BAD_CREDENTIAL")
        return Principal(stored.id, stored.name, Role(stored.role), stored.store_ids)


def authorize(principal: Principal, method: str, allowed: frozenset[Role]) -> None:
    if principal.role not in allowed:
        raise PermissionDenied(
            f"role {principal.role.value} may not call {method.rsplit('/', 1)[-1]}",
            reason="ROLE_NOT_ALLOWED",
        )


# Development credentials, created only with --demo-data; `make run` prints them.
DEV_TOKENS: dict[Role, str] = {
    Role.REGISTER: "dev-register.register-secret",
    Role.CUSTOMER_SERVICES: "dev-services.services-secret",
    Role.OPERATOR: "dev-operator.operator-secret",
    Role.BACK_OFFICE: "dev-backoffice.backoffice-secret",
}


def ensure_dev_credentials(session: Session) -> None:
    for role, token in DEV_TOKENS.items():
        credential_id, _, secret = token.partition(".")
        if not credential_exists(session, credential_id):
            create_credential(
                session,
                name=credential_id,
                role=role.value,
                all_stores=role is Role.REGISTER,
                credential_id=credential_id,
                secret=secret,
            )
