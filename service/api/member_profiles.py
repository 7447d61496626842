"""MemberService's single-member calls (spec §18), a part of MemberServicer: a profile read,
created or replaced, a card given or blocked. The request is checked by the import's own row
checks (service/api/import_rows.py, service/imports/records.py) and applied by the import's
batch rules (service/app/member_profiles.py); a refusal names the field of this request.
"""

from __future__ import annotations

import grpc

from loyalty.v1 import backoffice_pb2, common_pb2, member_pb2
from service import limits
from service.api import convert
from service.api.import_rows import row_from_proto
from service.app.member_profiles import MemberProfiles
from service.engine.attributes import MemberProfile
from service.errors import InvalidArgument, NotFound
from service.imports import records
from service.limits import check_length
from service.store.profile_repo import StoredProfile


def fill_profile(out: member_pb2.MemberProfile, stored: StoredProfile) -> None:
    out.member_id = stored.member_id
    for number, active in stored.cards:
        out.cards.add(card_number=number, blocked=not active)
    out.birth_date = stored.birth_date.isoformat() if stored.birth_date else ""
    if stored.gender is not None:
        out.gender = convert.GENDER.to_proto[stored.gender]
    out.segment_tags.extend(stored.segment_tags)
    out.inactive = not stored.active
    convert.set_timestamp(out.created_at, stored.created_at)
    convert.set_timestamp(out.updated_at, stored.updated_at)


class MemberProfilesServicer:
    """Mixed into MemberServicer, which sets `_profiles`."""

    _profiles: MemberProfiles

    def _member_id(self, identity: common_pb2.MemberIdentity) -> str:
        """The member a card (blocked too) or member id names; NOT_FOUND when none."""
        card = check_length(identity.card_number, limits.CARD, "member.card_number")
        member_id = check_length(identity.member_id, limits.ID, "member.member_id")
        if not card and not member_id:  # a oneof: at most one is set
            raise InvalidArgument("member", "a card number or a member id is required")
        if card:
            owner = self._profiles.owner_of_card(card)
            if owner is None:
                raise NotFound("no member has this card", reason="CARD_NOT_FOUND")
            return owner
        return member_id

    def GetMemberProfile(  # noqa: N802 - gRPC method name
        self, request: member_pb2.GetMemberProfileRequest, context: grpc.ServicerContext
    ) -> member_pb2.GetMemberProfileResponse:
        stored = self._profiles.profile(self._member_id(request.member))
        if stored is None:
            raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
        response = member_pb2.GetMemberProfileResponse()
        fill_profile(response.profile, stored)
        return response

    def UpsertMemberProfile(  # noqa: N802
        self, request: member_pb2.UpsertMemberProfileRequest, context: grpc.ServicerContext
    ) -> member_pb2.UpsertMemberProfileResponse:
        if not request.HasField("profile"):
            raise InvalidArgument("profile", "required")
        parsed = row_from_proto(backoffice_pb2.AttributeRow(member_profile=request.profile), 1)
        if parsed.error is not None:
            raise InvalidArgument(_in_profile(parsed.error.field), parsed.error.reason)
        assert isinstance(parsed.record, MemberProfile)
        try:
            stored, created = self._profiles.upsert(parsed.record)
        except InvalidArgument as error:
            raise InvalidArgument(_in_profile(error.field), error.description) from None
        response = member_pb2.UpsertMemberProfileResponse(created=created)
        fill_profile(response.profile, stored)
        return response

    def AddMemberCard(  # noqa: N802
        self, request: member_pb2.AddMemberCardRequest, context: grpc.ServicerContext
    ) -> member_pb2.AddMemberCardResponse:
        change = records.card_change(
            member_id=request.member_id, card_number=request.card_number, active=True
        )
        response = member_pb2.AddMemberCardResponse()
        fill_profile(response.profile, self._profiles.set_card(change))
        return response

    def BlockMemberCard(  # noqa: N802
        self, request: member_pb2.BlockMemberCardRequest, context: grpc.ServicerContext
    ) -> member_pb2.BlockMemberCardResponse:
        change = records.card_change(
            member_id=request.member_id, card_number=request.card_number, active=False
        )
        response = member_pb2.BlockMemberCardResponse()
        fill_profile(response.profile, self._profiles.set_card(change))
        return response


def _in_profile(field: str) -> str:
    return f"profile.{field}" if field else "profile"
