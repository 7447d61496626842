"""Explain mode: every candidate that was looked at and lost says why."""

from service.engine.model import (
    Audience,
    BenefitKind,
    Channel,
    Level,
    LimitUnit,
    Schedule,
    TimeRange,
    UsageLimit,
)
from tests.unit.engine.builders import exclusive, line, member, offer, one_line, run, snapshot, utc

PERCENT = BenefitKind.PERCENT


def reasons(snap, the_line, **fields) -> dict[str, tuple[str, int]]:
    result = one_line(snap, the_line, explain=True, **fields)
    return {r.offer_id: (r.reason, r.discount) for r in result.rejected}


def test_without_explain_nothing_is_listed() -> None:
    snap = snapshot([exclusive("a", PERCENT, 1000), exclusive("b", PERCENT, 2000)])
    assert one_line(snap, line("milk-1")).rejected == ()


def test_an_exclusive_that_lost_names_the_winner() -> None:
    snap = snapshot([exclusive("small", PERCENT, 1000), exclusive("big", PERCENT, 2000)])
    assert reasons(snap, line("milk-1", 10000)) == {"small": ("lost to exclusive big", 1000)}


def test_a_combinable_set_that_lost_names_the_exclusive() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 2000), offer("c1", PERCENT, 500), offer("c2", PERCENT, 500)]
    )
    assert reasons(snap, line("milk-1", 10000)) == {
        "c1": ("combinable set smaller than exclusive e", 500),
        "c2": ("combinable set smaller than exclusive e", 475),
    }


def test_an_exclusive_that_lost_to_the_combinable_set_says_so() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 1000), offer("c1", PERCENT, 1000), offer("c2", PERCENT, 500)]
    )
    assert reasons(snap, line("milk-1", 10000)) == {
        "e": ("exclusive smaller than combinable set", 1000)
    }


def test_a_benefit_dropped_by_the_min_price_says_cut_by_min_price() -> None:
    snap = snapshot(
        [offer("first", PERCENT, 2500, priority=2), offer("last", BenefitKind.AMOUNT_PER_UNIT, 500)]
    )
    assert reasons(snap, line("caviar", 12000)) == {"last": ("cut by min price", 500)}


def test_filters_give_their_reason() -> None:
    offers = [
        offer("expired", valid_to=utc(2026, 1, 1)),
        offer("later", valid_from=utc(2027, 1, 1)),
        offer("schedule", schedule=Schedule(time_ranges=(TimeRange(0, 60),))),
        offer("store", store_ids=frozenset({"s9"})),
        offer("channel", channels=frozenset({Channel.ONLINE})),
        offer("members", level=Level.MEMBERS_ONLY),
        offer(
            "audience",
            level=Level.TARGET_AUDIENCE,
            audience=Audience(segment_tags=frozenset({"x"})),
        ),
        offer("limit", usage_limit=UsageLimit(LimitUnit.RECEIPTS, 1)),
    ]
    snap = snapshot(offers)
    assert reasons(snap, line("milk-1"), store_id="s1") == {
        "expired": ("not valid at sale time", 0),
        "later": ("not valid at sale time", 0),
        "schedule": ("outside schedule", 0),
        "store": ("store not in offer", 0),
        "channel": ("channel not in offer", 0),
        "members": ("member required", 0),
        "audience": ("member required", 0),
        # anonymous: the receipt alone is under the limit, so it applies
    }
    found = reasons(
        snap,
        line("milk-1"),
        store_id="s1",
        member=member(active=False, usage={("limit", "OFFER"): 1}),
    )
    assert found["members"] == ("member not active", 0)
    assert found["limit"] == ("usage limit used up", 0)
    found = reasons(snap, line("milk-1"), store_id="s1", member=member())
    assert found["audience"] == ("audience does not match", 0)


def test_an_excluded_product_lists_every_candidate_as_excluded() -> None:
    snap = snapshot([offer("a"), offer("t", scope="tobacco")])
    assert reasons(snap, line("cigarettes")) == {
        "a": ("product excluded", 0),
        "t": ("product excluded", 0),
    }


def test_a_candidate_giving_nothing_says_so() -> None:
    snap = snapshot(
        [
            exclusive("fixed", BenefitKind.FIXED_PRICE, 20000),
            offer("b", BenefitKind.BONUS_PERCENT, 100),
        ]
    )
    assert reasons(snap, line("milk-1", 10000, price=10000)) == {
        "fixed": ("no discount on this line", 0)
    }
    snap = snapshot(
        [
            offer("all", PERCENT, 10000, priority=1),
            offer("more", PERCENT, 1000),
            offer("b", BenefitKind.BONUS_PERCENT, 100),
        ]
    )
    assert reasons(snap, line("milk-1")) == {
        "more": ("nothing left to pay", 0),
        "b": ("no points on this line", 0),
    }


def test_units_used_by_earlier_lines_are_explained() -> None:
    snap = snapshot([offer("o", PERCENT, 1000, usage_limit=UsageLimit(LimitUnit.UNITS, 1000))])
    result = run(snap, line("milk-1", line_id="1"), line("milk-2", line_id="2"), explain=True)
    assert result.lines[0].rejected == ()
    assert [(r.offer_id, r.reason) for r in result.lines[1].rejected] == [
        ("o", "usage limit used up by other lines")
    ]
