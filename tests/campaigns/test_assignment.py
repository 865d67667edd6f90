from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from campaigns import services
from campaigns.buckets import ab_bucket
from campaigns.models import SubAudienceKind
from segments.compiler import CompiledSQL
from segments.runner import fetch_all
from tests.campaigns.conftest import add_customers, assignment, state_definition

pytestmark = pytest.mark.django_db


def test_audience_is_union_of_includes_minus_union_of_exclusions(campaign, user, segment):
    add_customers("ca", 5, state="CA")
    add_customers("ny", 4, state="NY")
    add_customers("tx", 3, state="TX")
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment("CA").pk, segment("NY").pk]
    )
    services.campaign_update_exclusions(
        campaign=campaign, user=user, segment_ids=[segment("NY", "TX").pk]
    )
    rows = assignment(campaign)
    assert {r[0] for r in rows} == {f"ca{i:06d}" for i in range(5)}


def _two_groups(campaign, user, *, first_match: bool):
    services.campaign_update_first_match(campaign=campaign, user=user, first_match_only=first_match)
    west = services.sub_audience_add(
        campaign=campaign, user=user, name="West", kind=SubAudienceKind.CRITERIA,
        definition=state_definition("CA", "OR"),
    )  # fmt: skip
    coast = services.sub_audience_add(
        campaign=campaign, user=user, name="Coast", kind=SubAudienceKind.CRITERIA,
        definition=state_definition("CA", "NY"),
    )  # fmt: skip
    return west, coast


def test_first_match_puts_each_customer_in_the_first_matching_group_only(campaign, user, segment):
    add_customers("ca", 3, state="CA")
    add_customers("ny", 2, state="NY")
    add_customers("tx", 4, state="TX")
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment("CA", "NY", "TX").pk]
    )
    west, coast = _two_groups(campaign, user, first_match=True)
    remaining = campaign.sub_audiences.get(is_remaining=True)
    rows = assignment(campaign)
    groups = Counter(r[1] for r in rows)
    assert groups == {west.pk: 3, coast.pk: 2, remaining.pk: 4}
    assert len(rows) == 9


def test_all_matches_puts_a_customer_in_every_matching_group(campaign, user, segment):
    add_customers("ca", 3, state="CA")
    add_customers("ny", 2, state="NY")
    add_customers("tx", 4, state="TX")
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment("CA", "NY", "TX").pk]
    )
    west, coast = _two_groups(campaign, user, first_match=False)
    remaining = campaign.sub_audiences.get(is_remaining=True)
    rows = assignment(campaign)
    assert Counter(r[1] for r in rows) == {west.pk: 3, coast.pk: 5, remaining.pk: 4}
    assert Counter(r[0] for r in rows)["ca000000"] == 2


def test_reordering_changes_first_match_winner(campaign, user, segment):
    add_customers("ca", 3, state="CA")
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("CA").pk])
    west, coast = _two_groups(campaign, user, first_match=True)
    services.sub_audience_move(sub_audience=coast, user=user, offset=-1)
    assert {r[1] for r in assignment(campaign)} == {coast.pk}


def test_saved_segment_sub_audience(campaign, user, segment):
    add_customers("ca", 2, state="CA")
    add_customers("ny", 2, state="NY")
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment("CA", "NY").pk]
    )
    ny = segment("NY", name="New Yorkers")
    sub = services.sub_audience_add(
        campaign=campaign, user=user, name="", kind=SubAudienceKind.SEGMENT, segment_id=ny.pk
    )
    assert sub.name == "New Yorkers"
    assert Counter(r[1] for r in assignment(campaign))[sub.pk] == 2


def test_splits_follow_the_percentages_and_mark_the_control(campaign, user, segment):
    add_customers("c", 4000)
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("CA").pk])
    remaining = campaign.sub_audiences.get(is_remaining=True)
    control = remaining.treatments.get(is_control=True)
    rows = assignment(campaign)
    share = sum(1 for r in rows if r[2] == control.pk) / len(rows)
    assert 0.08 < share < 0.12
    assert all(r[3] == (r[2] == control.pk) for r in rows)
    assert all(r[2] is not None for r in rows)


def test_treatment_comes_from_the_bucket_of_key_and_customer(campaign, user, segment):
    ids = add_customers("c", 300)
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("CA").pk])
    remaining = campaign.sub_audiences.get(is_remaining=True)
    treatment_a = remaining.treatments.get(is_control=False)
    control = remaining.treatments.get(is_control=True)
    expected = {
        cid: treatment_a.pk if ab_bucket(campaign.bucket_key, cid) < 9000 else control.pk
        for cid in ids
    }
    assert {r[0]: r[2] for r in assignment(campaign)} == expected


def test_treatments_are_stable_when_the_audience_grows_and_shrinks(campaign, user, segment):
    add_customers("c", 1500)
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segment("CA", "NY").pk]
    )
    before = {r[0]: r[2] for r in assignment(campaign)}
    add_customers("n", 1500, state="NY")
    grown = {r[0]: r[2] for r in assignment(campaign)}
    assert {k: grown[k] for k in before} == before
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("NY").pk])
    shrunk = {r[0]: r[2] for r in assignment(campaign)}
    assert shrunk == {k: v for k, v in grown.items() if k.startswith("n")}


def test_control_group_is_the_same_across_two_recurring_runs(ready_campaign, user):
    add_customers("c", 2000)
    campaign = ready_campaign
    services.campaign_schedule(campaign=campaign, user=user)
    services.campaign_start_run(campaign)
    first = {r[0] for r in assignment(campaign) if r[3]}
    services.campaign_finish_run(campaign, ok=True)
    add_customers("d", 500)
    services.campaign_start_run(campaign)
    second = {r[0] for r in assignment(campaign) if r[3]}
    services.campaign_finish_run(campaign, ok=True)
    assert first and first <= second
    assert {c for c in second if c.startswith("c")} == first


def test_duplicate_gets_a_new_bucket_key(campaign, user):
    copy = services.campaign_duplicate(campaign=campaign, user=user)
    assert copy.bucket_key != campaign.bucket_key


def test_database_bucket_equals_the_python_bucket():
    keys = [("k", "c1"), ("abc", "C0000001"), ("ü", "ß"), ("0" * 32, "x" * 64)]
    with connection.cursor() as cursor:
        for key, cid in keys:
            cursor.execute("SELECT ab_bucket(%s, %s)", [key, cid])
            assert cursor.fetchone()[0] == ab_bucket(key, cid)
    assert ab_bucket("k", "c1") == int("74549d1e", 16) % 10000  # same value on both databases


def test_buckets_spread_evenly(campaign, user, segment):
    add_customers("c", 5000)
    rows = fetch_all(
        CompiledSQL("SELECT ab_bucket(%s, customer_id) / 1000 FROM customers", ["seed"])
    )
    spread = Counter(r[0] for r in rows)
    assert len(spread) == 10
    assert min(spread.values()) > 400
