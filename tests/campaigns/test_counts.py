"""Live counts and the delivery summary estimate against an independent reference: the
delivery's own assignment (``assignment_sql``), each segment's member query, and every
customer's identifiers counted in Python."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from django.core.cache import cache
from django.utils import timezone

from campaigns import services
from campaigns.assignment import assignment_scan
from campaigns.models import Campaign, SubAudienceKind
from campaigns.selectors import IDENTIFIERS, _counts_sql, campaign_counts, delivery_summary_estimate
from customers.models import Customer, Device
from destinations.models import Destination, DestinationStatus
from segments.models import Segment, SegmentKind, SegmentStatus
from segments.runner import fetch_all
from segments.selectors import segment_members_sql
from tests.campaigns.conftest import add_customers, assignment, state_definition

# Transactional: SQL segments run on a database login of their own (segments.fence), which
# sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

STATES = ["CA", "NY", "TX", "OR", "WA", ""]
TIERS = ["Gold", "Silver", ""]


def make_people(seed: int, n: int = 260) -> None:
    """Customers with valid, invalid (value but no hash) and missing emails and phones, and
    0 to 4 devices each, valid or invalid, of both kinds."""
    rng = random.Random(seed)
    now = timezone.now()
    customers, devices = [], []
    for i in range(n):
        cid = f"p{seed}-{i:04d}"
        email = rng.choice([("x@example.com", "e" * 64), ("not an email", ""), ("", "")])
        phone = rng.choice([("+12133734253", "p" * 64), ("12", ""), ("", "")])
        customers.append(
            Customer(
                customer_id=cid,
                state=rng.choice(STATES),
                loyalty_tier=rng.choice(TIERS),
                email=email[0],
                email_sha256=email[1],
                phone=phone[0],
                phone_sha256=phone[1],
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        )
        for j in range(rng.choice([0, 0, 1, 1, 2, 4])):
            kind = rng.choice(["IDFA", "AAID"])
            valid = rng.random() < 0.7
            devices.append(
                Device(
                    customer_id=cid,
                    kind=kind,
                    raw_id=f"{cid}-{j}",
                    normalized_id=f"{cid}-{j}" if valid else "",
                    sha256="d" * 64 if valid else "",
                )  # fmt: skip
            )
    Customer.objects.bulk_create(customers)
    Device.objects.bulk_create(devices)


def visual(name: str, *states: str, tiers: tuple[str, ...] = ()) -> Segment:
    definition = state_definition(*states)
    if tiers:
        definition["sections"][0]["conditions"].append(
            {
                "type": "attribute",
                "attribute": "loyalty_tier",
                "operator": "in",
                "value": list(tiers),
            }
        )
    return Segment.objects.create(name=name, status=SegmentStatus.ACTIVE, definition=definition)


def sql_segment(name: str, sql: str) -> Segment:
    return Segment.objects.create(
        name=name, status=SegmentStatus.ACTIVE, kind=SegmentKind.SQL, sql=sql
    )


def destination(name: str, advertiser: str) -> Destination:
    return Destination.objects.create(
        name=name, advertiser_id=advertiser, status=DestinationStatus.CONNECTED
    )


def build_campaign(user, *, first_match: bool) -> Campaign:
    """Two include segments (one SQL), two exclusions (one SQL), four sub-audiences (custom
    criteria, saved visual and SQL segments) with 3-way, single, 0 % and incomplete splits,
    the Remaining group at 90/10, two destinations sending different identifiers."""
    campaign = services.campaign_create(user=user, name=f"Counts {first_match}")
    services.campaign_update_first_match(campaign=campaign, user=user, first_match_only=first_match)
    gold = "SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'"
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[
        visual("West+NY", "CA", "OR", "WA", "NY").pk, sql_segment("Gold by SQL", gold).pk,
    ])  # fmt: skip
    services.campaign_update_exclusions(campaign=campaign, user=user, segment_ids=[
        visual("Silver WA", "WA", tiers=("Silver",)).pk,
        sql_segment("No state by SQL", "SELECT customer_id FROM customers WHERE state = ''").pk,
    ])  # fmt: skip
    tiered = state_definition("CA", "NY")
    tiered["sections"][0]["conditions"].append(
        {"type": "attribute", "attribute": "loyalty_tier", "operator": "in", "value": ["Gold"]}
    )
    coast = services.sub_audience_add(campaign=campaign, user=user, name="Gold coast",
                                      kind=SubAudienceKind.CRITERIA, definition=tiered)  # fmt: skip
    west = services.sub_audience_add(campaign=campaign, user=user, name="",
                                     kind=SubAudienceKind.SEGMENT,
                                     segment_id=visual("CA/OR", "CA", "OR").pk)  # fmt: skip
    silver_sql = "SELECT customer_id FROM customers WHERE loyalty_tier = 'Silver'"
    silver = services.sub_audience_add(
        campaign=campaign, user=user, name="", kind=SubAudienceKind.SEGMENT,
        segment_id=sql_segment("Silver by SQL", silver_sql).pk,
    )  # fmt: skip
    half = services.sub_audience_add(campaign=campaign, user=user, name="Half of NY",
                                     kind=SubAudienceKind.CRITERIA,
                                     definition=state_definition("NY"))  # fmt: skip
    # Gold coast: 50 / 30 (control) / 20; West: one treatment at 100 % and one at 0 %;
    # Silver: 100 % control; Half of NY: 60 % only, so 40 % have no treatment (a draft).
    a, control = coast.treatments.order_by("position")
    b = services.treatment_add(sub_audience=coast, user=user)
    for treatment, split in ((a, 50), (control, 30), (b, 20)):
        services.treatment_update(treatment=treatment, user=user, split=split)
    west_a, west_control = west.treatments.order_by("position")
    services.treatment_update(treatment=west_a, user=user, split=100)
    services.treatment_update(treatment=west_control, user=user, split=0)
    silver_a, silver_control = silver.treatments.order_by("position")
    services.treatment_update(treatment=silver_a, user=user, split=0)
    services.treatment_update(treatment=silver_control, user=user, split=100)
    half_a, half_control = half.treatments.order_by("position")
    services.treatment_update(treatment=half_a, user=user, split=60)
    services.treatment_update(treatment=half_control, user=user, split=0)

    main, devices_only = (
        destination("Main", "7000000000000000001"),
        destination("Apps", "7000000000000000002"),
    )
    for treatment in (a, b, west_a, half_a):
        services.treatment_set_destinations(treatment=treatment, user=user,
                                            destination_ids=[main.pk])  # fmt: skip
    remaining = campaign.sub_audiences.get(is_remaining=True)
    rest_a = remaining.treatments.get(is_control=False)
    services.treatment_set_destinations(treatment=rest_a, user=user,
                                        destination_ids=[main.pk, devices_only.pk])  # fmt: skip
    services.treatment_set_destinations(treatment=b, user=user,
                                        destination_ids=[main.pk, devices_only.pk])  # fmt: skip
    links = campaign.campaign_destinations
    for link, sent in ((links.get(destination=main), set(IDENTIFIERS)),
                       (links.get(destination=devices_only), {"IDFA", "AAID"})):  # fmt: skip
        mapping = [
            dict(r, enabled=r["destination_attribute"] in sent) for r in link.attribute_mapping
        ]
        services.campaign_destination_update(campaign_destination=link, user=user, mapping=mapping)
    campaign.refresh_from_db()
    return campaign


def identifiers() -> dict[str, dict[str, tuple[int, int]]]:
    """customer_id -> identifier -> (valid, invalid), straight from the rows."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for c in Customer.objects.all():
        found[c.customer_id] = {
            "EMAIL": (int(c.email_sha256 != ""), int(c.email_sha256 == "" and c.email != "")),
            "PHONE": (int(c.phone_sha256 != ""), int(c.phone_sha256 == "" and c.phone != "")),
            "IDFA": (0, 0),
            "AAID": (0, 0),
        }
    for d in Device.objects.all():
        valid, invalid = found[d.customer_id][d.kind]
        found[d.customer_id][d.kind] = (valid + (d.sha256 != ""), invalid + (d.sha256 == ""))
    return found


def members(segments) -> set[str]:
    return {r[0] for s in segments for r in fetch_all(segment_members_sql(s))}


def reference(campaign: Campaign) -> dict:
    people = identifiers()
    included = members(campaign.include_segments.all()) & set(people)
    excluded = members(campaign.exclude_segments.all())
    rows = assignment(campaign)  # (customer_id, sub_audience_id, treatment_id, is_control)
    assert {r[0] for r in rows} == included - excluded
    in_treatment: dict[int, list[str]] = defaultdict(list)
    for cid, _, treatment_id, _ in rows:
        if treatment_id is not None:
            in_treatment[treatment_id].append(cid)
    summary = []
    for link in campaign.campaign_destinations.all():
        sent = [r["destination_attribute"] for r in link.attribute_mapping
                if r["enabled"] and r["destination_attribute"] in IDENTIFIERS]  # fmt: skip
        for treatment_id in link.treatment_links.values_list("treatment_id", flat=True):
            customers = in_treatment[treatment_id]
            per_person = [max([people[c][k][0] for k in sent] + [0]) for c in customers]
            summary.append({
                "treatment": treatment_id, "destination": link.destination_id,
                "customers": len(customers), "rows": sum(per_person),
                "shrink": per_person.count(0), "expansion": sum(max(p - 1, 0) for p in per_person),
                "invalid": {k: sum(people[c][k][1] for c in customers) for k in sent},
            })  # fmt: skip
    audience = included - excluded
    return {
        "inclusions": len(included),
        "exclusions": len(included & excluded),
        "total": len(audience),
        "by_sub_audience": dict(Counter(r[1] for r in rows)),
        "by_treatment": dict(Counter(r[2] for r in rows if r[2] is not None)),
        "reachable": {k: sum(1 for c in audience if people[c][k][0]) for k in IDENTIFIERS},
        "reachable_any": sum(1 for c in audience if any(people[c][k][0] for k in IDENTIFIERS)),
        "summary": sorted(summary, key=lambda r: (r["treatment"], r["destination"])),
    }


def measured(campaign: Campaign) -> dict:
    counts = campaign_counts(campaign)
    assert not counts.problems
    summary = [
        {"treatment": r.treatment_id, "destination": r.destination_id, "customers": r.customers,
         "rows": r.rows, "shrink": r.shrink, "expansion": r.expansion, "invalid": r.invalid}
        for r in delivery_summary_estimate(campaign, counts)
    ]  # fmt: skip
    return {
        "inclusions": counts.inclusions,
        "exclusions": counts.exclusions,
        "total": counts.total,
        "by_sub_audience": counts.by_sub_audience,
        "by_treatment": counts.by_treatment,
        "reachable": counts.reachable,
        "reachable_any": counts.reachable_any,
        "summary": sorted(summary, key=lambda r: (r["treatment"], r["destination"])),
    }


@pytest.mark.parametrize("first_match", [True, False], ids=["first-match", "all-matches"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_and_summary_equal_the_assignment_and_each_customers_identifiers(
    user, first_match, seed
):
    make_people(seed)
    campaign = build_campaign(user, first_match=first_match)
    expected = reference(campaign)
    assert measured(campaign) == expected
    # the data is varied enough for every figure to mean something
    assert expected["exclusions"] and all(expected["reachable"].values())
    assert any(r["shrink"] for r in expected["summary"]) and any(
        r["expansion"] for r in expected["summary"]
    )
    assert any(sum(r["invalid"].values()) for r in expected["summary"])
    assert None in {r[2] for r in assignment(campaign)}  # the incomplete split is exercised


def test_swapping_splits_between_two_groups_is_counted_despite_the_cache(user, segment):
    """The 30 s cache keeps the query's rows, not decoded counts: swapping two groups'
    splits over the same boundaries changes who gets which treatment but not the SQL."""
    add_customers("ca", 300, state="CA")
    add_customers("ny", 300, state="NY")
    campaign = services.campaign_create(user=user, name="Two groups")
    services.campaign_update_audience(campaign=campaign, user=user,
                                      segment_ids=[segment("CA", "NY").pk])  # fmt: skip
    groups = [
        services.sub_audience_add(campaign=campaign, user=user, name=s,
                                  kind=SubAudienceKind.CRITERIA, definition=state_definition(s))
        for s in ("CA", "NY")
    ]  # fmt: skip
    treatments = [g.treatments.order_by("position") for g in groups]

    def split(first: int, second: int) -> None:
        for (t, c), share in zip(treatments, (first, second), strict=True):
            services.treatment_update(treatment=t, user=user, split=share)
            services.treatment_update(treatment=c, user=user, split=100 - share)

    cache.clear()
    split(30, 70)
    sql = _counts_sql(assignment_scan(campaign)).sql
    assert campaign_counts(campaign).by_treatment == dict(
        Counter(r[2] for r in assignment(campaign))
    )
    split(70, 30)  # same boundaries {3000, 7000}, same SQL, other treatments
    assert _counts_sql(assignment_scan(campaign)).sql == sql
    assert campaign_counts(campaign).by_treatment == dict(
        Counter(r[2] for r in assignment(campaign))
    )


def test_a_campaign_without_segments_counts_nobody(campaign):
    add_customers("c", 5)
    counts = campaign_counts(campaign)
    assert (counts.inclusions, counts.exclusions, counts.total, counts.problems) == (0, 0, 0, {})
    assert counts.reachable == dict.fromkeys(IDENTIFIERS, 0)


def test_invalid_segments_are_reported_at_their_step(campaign, user, segment):
    add_customers("c", 5)
    broken = segment("CA", name="Broken")
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[broken.pk])
    Segment.objects.filter(pk=broken.pk).update(definition={"version": 99})
    problems = campaign_counts(campaign).problems
    assert list(problems) == ["audience"] and "Broken" in problems["audience"][0]

    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("CA").pk])
    sub = services.sub_audience_add(campaign=campaign, user=user, name="Bad",
                                    kind=SubAudienceKind.CRITERIA,
                                    definition=state_definition("NY"))  # fmt: skip
    type(sub).objects.filter(pk=sub.pk).update(
        definition={"version": 1, "sections": [{"conditions": [{"type": "x"}]}]}
    )
    problems = campaign_counts(campaign).problems
    assert list(problems) == [f"sub-audience {sub.pk}"]
    assert problems[f"sub-audience {sub.pk}"][0].startswith("Sub-audience “Bad”")


def test_one_scan_of_customers_evaluates_every_visual_segment(user):
    make_people(9, n=20)
    campaign = build_campaign(user, first_match=True)
    sql = _counts_sql(assignment_scan(campaign)).sql
    assert sql.count("FROM customers") == 1  # the scan
    # the three SQL segments, as their members evaluated behind the fence (segments.fence)
    assert sql.count("FROM segments_sql_result_member") == 3


def test_all_matches_counts_with_the_most_sub_audiences(user, segment):
    """59 groups plus Remaining: the membership bit mask needs 59 bits (bigint)."""
    states = ["CA", "NY", "TX", "OR", "WA"]
    for i, state in enumerate(states):
        add_customers(state.lower(), 3 + i, state=state)
    campaign = services.campaign_create(user=user, name="Many groups")
    services.campaign_update_first_match(campaign=campaign, user=user, first_match_only=False)
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment(*states).pk]
    )
    for i in range(59):
        picked = [s for j, s in enumerate(states) if (i + 1) >> j & 1] or ["ZZ"]
        services.sub_audience_add(campaign=campaign, user=user, name=f"G{i}",
                                  kind=SubAudienceKind.CRITERIA,
                                  definition=state_definition(*picked))  # fmt: skip
    counts = campaign_counts(campaign)
    rows = assignment(campaign)
    assert counts.by_sub_audience == dict(Counter(r[1] for r in rows))
    assert counts.by_treatment == dict(Counter(r[2] for r in rows if r[2] is not None))
    assert counts.total == len({r[0] for r in rows}) == 3 + 4 + 5 + 6 + 7
