"""Customer lookup (the "Customer 360"): search by id, email or phone, the customer page,
the segments a customer is in, and why each recent delivery did or did not send them.

Oracles are independent of the code under test: expected matches and memberships follow
from how each test builds its customers, expected hashes are computed here with hashlib
from the raw values written, and "who is in the control group" is read from the
delivery's snapshot table, not from the lookup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Role
from customers.lookup import (
    LookupError_,
    Verdict,
    customer_360,
    customer_deliveries,
    customer_search,
    customer_segments,
    recent_deliveries,
)
from customers.models import Customer
from deliveries.models import DeliveryRecipient, DeliveryTarget
from deliveries.services import delivery_schedule_due
from deliveries.tasks import run_delivery
from segments.models import Segment, SegmentKind, SegmentStatus
from tests.deliveries import conftest as delivery_fixtures
from tests.deliveries.conftest import make_customers
from tests.factories import (
    CustomerFactory,
    DeviceFactory,
    OrderFactory,
    SegmentFactory,
    state_definition,
)

# The delivery tests' fixtures: a TikTok destination on the sandbox, a campaign sending to it.
destination = delivery_fixtures.destination
make_campaign = delivery_fixtures.make_campaign
tiktok_settings = delivery_fixtures.tiktok_settings

ON_PG = connection.vendor == "postgresql"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def jane(db):
    return CustomerFactory(
        customer_id="C-jane",
        given_name="Jane",
        surname="Doe",
        email="Jane.Doe@Example.com",
        phone="(213) 373-4253",
        country="US",
        state="CA",
    )


@pytest.fixture
def others(db):
    return [
        CustomerFactory(customer_id=f"C-other-{i}", phone=f"+1 415 555 01{i:02d}", state="NY")
        for i in range(3)
    ]


# ---- search ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "typed",
    [
        "jane.doe@example.com",
        "  JANE.DOE@EXAMPLE.COM ",
        "Jane.Doe@example.COM",
    ],
)
def test_an_email_is_found_however_it_is_written(jane, others, typed):
    result = customer_search(typed, region="US")
    assert [c.customer_id for c in result.customers] == ["C-jane"]
    assert "email" in result.matched_as


@pytest.mark.django_db
@pytest.mark.parametrize(
    "typed", ["+1 213 373 4253", "(213) 373-4253", "213.373.4253", "+12133734253", "2133734253"]
)
def test_a_phone_is_found_however_it_is_written(jane, others, typed):
    result = customer_search(typed, region="US")
    assert [c.customer_id for c in result.customers] == ["C-jane"]


@pytest.mark.django_db
def test_a_national_phone_number_is_read_in_the_region_given(jane, others):
    # In France, 213 373 4253 is not a valid number: nothing matches.
    assert customer_search("(213) 373-4253", region="FR").customers == []


@pytest.mark.django_db
def test_an_id_matches_exactly(jane, others):
    assert [c.customer_id for c in customer_search("C-jane").customers] == ["C-jane"]
    assert customer_search("c-jane").customers == []
    assert customer_search("C-jan").customers == []


@pytest.mark.django_db
def test_a_hash_finds_the_customer_whose_email_or_phone_it_is(jane, others):
    assert [c.customer_id for c in customer_search(sha("jane.doe@example.com")).customers] == [
        "C-jane"
    ]
    assert [c.customer_id for c in customer_search(sha("+12133734253").upper()).customers] == [
        "C-jane"
    ]


@pytest.mark.django_db
def test_several_matches_are_listed_in_id_order_and_capped_with_the_total(db):
    for i in (3, 1, 2, 0):
        CustomerFactory(customer_id=f"C-dup-{i}", email="shared@example.com")
    result = customer_search("SHARED@example.com", limit=3)
    assert [c.customer_id for c in result.customers] == ["C-dup-0", "C-dup-1", "C-dup-2"]
    assert result.total == 4
    assert result.more == 1


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["", "   ", "x" * 255, "C-jane\x00"])
def test_values_that_cannot_be_searched_are_refused(jane, typed):
    with pytest.raises(LookupError_):
        customer_search(typed)


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["jane.doe@example.com", "+1 213 373 4253"])
def test_the_email_and_phone_search_is_one_query_on_the_hashes(jane, others, typed):
    with CaptureQueriesContext(connection) as captured:
        result = customer_search(typed, region="US")
    searches = [q["sql"] for q in captured.captured_queries if 'FROM "customers"' in q["sql"]]
    assert len(searches) == 1 and "sha256" in searches[0]
    assert "C-jane" in {c.customer_id for c in result.customers}


# ---- the lookup page ---------------------------------------------------------------------


def test_one_match_opens_the_customer(make_client, jane, others):
    client = make_client(Role.VIEWER)
    response = client.get(reverse("customers:lookup"), {"q": "JANE.doe@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:customer", args=["C-jane"])


def test_several_matches_are_a_list_to_choose_from(make_client, db):
    for i in range(2):
        CustomerFactory(customer_id=f"C-dup-{i}", email="Shared.Person@example.com")
    client = make_client(Role.VIEWER)
    response = client.get(reverse("customers:lookup"), {"q": "shared.person@EXAMPLE.com"})
    assert response.status_code == 200
    html = response.content.decode()
    for i in range(2):
        assert reverse("customers:customer", args=[f"C-dup-{i}"]) in html
    assert "Shared.Person@example.com" in html  # full access: the email as imported


def test_a_restricted_user_may_search_but_sees_masked_matches(make_client, db):
    for i in range(2):
        CustomerFactory(
            customer_id=f"C-dup-{i}", email="shared.person@example.com", phone="+1 213 373 4253"
        )
    client = make_client(Role.MARKETER, restricted_pii=True)
    response = client.get(reverse("customers:lookup"), {"q": "(213) 373-4253"})
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("customers:customer", args=["C-dup-0"]) in html
    assert "shared.person@example.com" not in html
    assert "s***@example.com" in html
    assert "373 4253" not in html and "+12133734253" not in html
    assert "***53" in html


def test_no_match_says_so_without_repeating_the_value(make_client, jane):
    client = make_client(Role.VIEWER)
    response = client.get(reverse("customers:lookup"), {"q": "nobody@nowhere.example"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "No customer has that id, email or phone" in body
    # The value typed stays in the search box only.
    assert body.count("nobody@nowhere.example") == 1
    assert 'value="nobody@nowhere.example"' in body


def test_bad_input_is_a_400_with_a_message_that_does_not_echo_it(make_client, jane):
    client = make_client(Role.VIEWER)
    typed = "q" * 300
    response = client.get(reverse("customers:lookup"), {"q": typed})
    assert response.status_code == 400
    body = response.content.decode()
    assert "at most 254 printable characters" in body
    assert body.count(typed) <= 1  # at most in the search box, never in the message
    assert Customer.objects.count() == 1


def test_anonymous_visitors_are_sent_to_sign_in(client, jane):
    response = client.get(reverse("customers:customer", args=["C-jane"]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_data_page_has_the_search_box(make_client, db):
    html = make_client(Role.VIEWER).get(reverse("customers:overview")).content.decode()
    assert f'action="{reverse("customers:lookup")}"' in html
    assert 'name="q"' in html


# ---- the customer page -------------------------------------------------------------------


@pytest.fixture
def jane_with_history(jane):
    DeviceFactory(customer=jane, kind="IDFA", raw_id="6D92078A-8246-4BA4-AE5B-76104861E7DC")
    DeviceFactory(customer=jane, kind="AAID", raw_id="not-a-device-id", sha256="")
    now = timezone.now()
    for day in range(25):
        OrderFactory(
            customer=jane,
            order_id=f"O-jane-{day:02d}",
            ordered_at=now - dt.timedelta(days=day * 3 + 1),
            amount=Decimal("10.00") + day,
            is_return=day == 4,
        )
    return jane


def test_the_page_shows_attributes_identifiers_devices_and_orders(make_client, jane_with_history):
    client = make_client(Role.VIEWER)
    response = client.get(reverse("customers:customer", args=["C-jane"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Jane Doe" in html
    assert "Jane.Doe@Example.com" in html and "jane.doe@example.com" in html
    assert sha("jane.doe@example.com") in html and sha("+12133734253") in html
    assert "+12133734253" in html
    assert "6D92078A-8246-4BA4-AE5B-76104861E7DC" in html
    assert sha("6d92078a-8246-4ba4-ae5b-76104861e7dc") in html
    assert "not-a-device-id" in html and ">invalid<" in html
    # Orders: the 20 most recent first, then page 2 holds the 5 oldest.
    expected = [f"O-jane-{day:02d}" for day in range(25)]
    positions = [html.find(order_id) for order_id in expected[:20]]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert expected[20] not in html
    assert "25 orders, 1 of them return" in html
    spent = sum(Decimal("10.00") + d for d in range(25) if d != 4)
    assert f"{spent:,.2f} USD" in html
    page2 = client.get(reverse("customers:customer", args=["C-jane"]), {"orders": 2})
    html2 = page2.content.decode()
    assert [o for o in expected if o in html2] == expected[20:]


def test_a_restricted_user_sees_masked_identifiers_and_the_hashes(make_client, jane_with_history):
    client = make_client(Role.MARKETER, restricted_pii=True)
    html = client.get(reverse("customers:customer", args=["C-jane"])).content.decode()
    for raw in (
        "Jane.Doe@Example.com",
        "jane.doe@example.com",
        "(213) 373-4253",
        "+12133734253",
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
        "not-a-device-id",
    ):
        assert raw not in html, raw
    assert "J***@Example.com" in html and "j***@example.com" in html
    assert "***53" in html
    assert "6D***" in html and "no***" in html
    assert sha("jane.doe@example.com") in html


def test_an_unknown_customer_is_a_404(make_client, jane):
    response = make_client(Role.VIEWER).get(reverse("customers:customer", args=["C-nobody"]))
    assert response.status_code == 404


def test_a_customer_whose_id_no_url_can_carry_is_listed_without_a_link(make_client, db):
    CustomerFactory(customer_id="two\nlines", email="odd.one@example.com")
    response = make_client(Role.VIEWER).get(
        reverse("customers:lookup"), {"q": "odd.one@example.com"}
    )
    assert response.status_code == 200
    assert "1 customer matches" in response.content.decode()


def test_customer_ids_with_any_characters_open(make_client, db):
    CustomerFactory(customer_id="shop/42 é?x%")
    url = reverse("customers:customer", args=["shop/42 é?x%"])
    response = make_client(Role.VIEWER).get(url)
    assert response.status_code == 200
    assert "shop/42 é?x%" in response.content.decode()


# ---- segments ----------------------------------------------------------------------------


def _tier_sql_segment(name: str, tier: str) -> Segment:
    return Segment.objects.create(
        name=name,
        status=SegmentStatus.ACTIVE,
        kind=SegmentKind.SQL,
        sql=f"SELECT customer_id FROM customers WHERE loyalty_tier = '{tier}'",
    )


@pytest.mark.django_db(transaction=True)  # the SQL segment runs on its own login (PG)
def test_active_segments_are_evaluated_for_the_customer_in_one_query(jane, others):
    in_ca = SegmentFactory(name="Californians", definition=state_definition("CA"))
    SegmentFactory(name="New Yorkers", definition=state_definition("NY"))
    SegmentFactory(name="Draft CA", status="draft", definition=state_definition("CA"))
    gold = _tier_sql_segment("Gold by SQL", "Gold")
    _tier_sql_segment("Platinum by SQL", "Platinum")
    with CaptureQueriesContext(connection) as captured:
        memberships = customer_segments(jane)
    assert {s.name for s in memberships.active()} == {"Californians", "Gold by SQL"}
    assert memberships.state(in_ca.pk) is True and memberships.state(gold.pk) is True
    scans = [q for q in captured.captured_queries if "FROM customers c WHERE" in q["sql"]]
    assert len(scans) == 1
    # More segments, still one query over the customer.
    for i in range(4):
        SegmentFactory(name=f"More {i}", definition=state_definition("TX"))
    with CaptureQueriesContext(connection) as captured:
        customer_segments(jane)
    assert len([q for q in captured.captured_queries if "FROM customers c WHERE" in q["sql"]]) == 1


@pytest.mark.django_db
def test_more_segments_than_one_select_can_hold_take_a_second_query(jane, monkeypatch):
    from customers import lookup

    for i in range(5):
        SegmentFactory(name=f"CA {i}", definition=state_definition("CA"))
        SegmentFactory(name=f"NY {i}", definition=state_definition("NY"))
    monkeypatch.setattr(lookup, "MAX_COLUMNS", 4)
    with CaptureQueriesContext(connection) as captured:
        memberships = customer_segments(jane)
    assert len([q for q in captured.captured_queries if "FROM customers c WHERE" in q["sql"]]) == 3
    assert [s.name for s in memberships.active()] == [f"CA {i}" for i in range(5)]


@pytest.mark.django_db
def test_a_segment_that_cannot_be_evaluated_is_named_and_the_others_still_are(jane):
    SegmentFactory(name="Californians", definition=state_definition("CA"))
    broken = SegmentFactory(
        name="Broken",
        definition={
            "version": 1,
            "combinator": "and",
            "sections": [{"combinator": "and", "conditions": [{"type": "nonsense"}]}],
            "exclusions": {"combinator": "or", "conditions": []},
        },
    )
    memberships = customer_segments(jane)
    assert [s.name for s in memberships.active()] == ["Californians"]
    assert [s.pk for s, _why in memberships.active_unknown()] == [broken.pk]
    assert memberships.state(broken.pk) is None


def test_the_page_lists_the_active_segments_the_customer_is_in(make_client, jane):
    SegmentFactory(name="Californians", definition=state_definition("CA"))
    SegmentFactory(name="New Yorkers", definition=state_definition("NY"))
    html = make_client(Role.VIEWER).get(reverse("customers:customer", args=["C-jane"]))
    body = html.content.decode()
    assert "Californians" in body and "New Yorkers" not in body


# ---- deliveries: was this person sent? ---------------------------------------------------


def _deliver_all() -> list[int]:
    ids = delivery_schedule_due()
    for delivery_id in ids:
        assert run_delivery(delivery_id) == "delivered"
    return ids


@pytest.fixture
def delivered(db, sandbox, destination, make_campaign):
    """A campaign (tier is not "Gone", 50 % control) that excludes New Yorkers, delivered
    through the sandbox to a TikTok audience, with customers in every situation."""
    make_customers(40)  # C0000000…: email and phone each
    make_customers(20, start=100, nothing_every=1)  # no usable identifier at all
    CustomerFactory(customer_id="X-gone", loyalty_tier="Gone", email="gone@example.com")
    CustomerFactory(customer_id="X-ny", state="NY", loyalty_tier="Gold", email="ny@example.com")
    campaign = make_campaign(destination, name="Spring", control_bp=5000)
    campaign.exclude_segments.add(
        SegmentFactory(name="New Yorkers", definition=state_definition("NY"))
    )
    [delivery_id] = _deliver_all()
    return campaign, delivery_id


def _snapshot(delivery_id: int) -> dict[str, bool]:
    return dict(
        DeliveryRecipient.objects.filter(delivery_id=delivery_id).values_list(
            "customer_id", "is_control"
        )
    )


def _outcome(customer_id: str):
    customer = Customer.objects.get(customer_id=customer_id)
    view = customer_360(customer)
    [outcome] = view.history.outcomes
    return outcome


def test_a_sent_customer_shows_the_hashed_ids_the_audience_holds(delivered):
    _campaign, delivery_id = delivered
    snapshot = _snapshot(delivery_id)
    sent = sorted(cid for cid, control in snapshot.items() if cid < "C00001" and not control)
    assert sent, "with a 50 % split some customers are sent"
    outcome = _outcome(sent[0])
    assert outcome.verdict == Verdict.SENT
    [target] = outcome.targets
    email = f"{sent[0].lower()}@example.com"
    number = int(sent[0][1:])
    phone = f"+1213373{number % 10000:04d}"
    assert {(h.id_type, h.sha256) for h in target.held} == {
        ("EMAIL_SHA256", sha(email)),
        ("PHONE_SHA256", sha(phone)),
    }
    assert target.source == "ledger"


def test_a_control_group_customer_is_explained(delivered):
    _campaign, delivery_id = delivered
    control = sorted(cid for cid, is_control in _snapshot(delivery_id).items() if is_control)
    assert control, "with a 50 % split some customers are in the control group"
    outcome = _outcome(control[0])
    assert outcome.verdict == Verdict.CONTROL
    assert outcome.targets == []
    assert "control" in outcome.why


def test_an_excluded_customer_is_explained(delivered):
    outcome = _outcome("X-ny")
    assert outcome.verdict == Verdict.EXCLUDED
    assert "New Yorkers" in outcome.why


def test_a_customer_outside_the_audience_is_explained(delivered):
    outcome = _outcome("X-gone")
    assert outcome.verdict == Verdict.NOT_IN_AUDIENCE
    assert "Spring audience" in outcome.why
    assert outcome.placements == []


def test_a_customer_without_a_valid_identifier_is_explained(delivered):
    _campaign, delivery_id = delivered
    snapshot = _snapshot(delivery_id)
    bare = sorted(cid for cid, control in snapshot.items() if cid >= "C0000100" and not control)
    assert bare, "20 customers without identifiers, each sent with a chance of 1/2"
    outcome = _outcome(bare[0])
    assert outcome.verdict == Verdict.NO_IDENTIFIER
    [target] = outcome.targets
    assert target.held == [] and not target.usable


def test_an_audience_without_a_ledger_shows_the_ids_computed_from_the_store(delivered):
    _campaign, delivery_id = delivered
    sent = sorted(
        cid for cid, control in _snapshot(delivery_id).items() if cid < "C00001" and not control
    )
    DeliveryTarget.objects.filter(delivery_id=delivery_id).update(destination_audience=None)
    outcome = _outcome(sent[0])
    [target] = outcome.targets
    assert target.source == "store"
    assert {h.sha256 for h in target.held} == {
        sha(f"{sent[0].lower()}@example.com"),
        sha(f"+1213373{int(sent[0][1:]) % 10000:04d}"),
    }


def test_the_history_takes_the_same_queries_for_more_deliveries(
    delivered, destination, make_campaign
):
    _campaign, spring_id = delivered
    make_campaign(destination, name="Summer", control_bp=0)
    _deliver_all()
    # Sent by both deliveries, so each one reads the same tables for them.
    sent = sorted(
        cid for cid, control in _snapshot(spring_id).items() if cid < "C00001" and not control
    )
    customer = Customer.objects.get(customer_id=sent[0])
    memberships = customer_segments(customer)
    deliveries, total = recent_deliveries()
    assert total == 2
    with CaptureQueriesContext(connection) as one:
        first = customer_deliveries(customer, memberships, deliveries=deliveries[:1], total=1)
    assert [o.verdict for o in first.outcomes] == [Verdict.SENT]
    with CaptureQueriesContext(connection) as two:
        history = customer_deliveries(customer, memberships, deliveries=deliveries, total=2)
    assert len(one.captured_queries) == len(two.captured_queries)
    assert [o.delivery.campaign.name for o in history.outcomes] == ["Summer", "Spring"]
    assert [o.verdict for o in history.outcomes] == [Verdict.SENT, Verdict.SENT]


def test_the_page_explains_each_delivery_to_a_viewer(delivered, make_client):
    _campaign, delivery_id = delivered
    client = make_client(Role.VIEWER)
    html = client.get(reverse("customers:customer", args=["X-ny"])).content.decode()
    assert "Excluded" in html and "New Yorkers" in html
    assert reverse("deliveries:detail", args=[delivery_id]) in html


# ---- whatever is typed -------------------------------------------------------------------

TYPED = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="+0123456789 ()-.x@", max_size=40),
    st.from_regex(r"[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True),
    st.sampled_from(["\x00", "C-jane\x00", "%", "'; DROP TABLE customers; --", "a" * 64]),
)


REFUSALS = {
    "Type a customer id, an email address or a phone number.",
    "That is not a customer id, an email or a phone number: at most 254 printable characters.",
}


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(typed=TYPED)
def test_whatever_is_typed_the_pages_answer_without_an_error(make_client, jane, typed):
    client = make_client(Role.VIEWER)
    response = client.get(reverse("customers:lookup"), {"q": typed})
    assert response.status_code in (200, 302, 400)
    if response.status_code == 400:
        # The message is one of the fixed texts: it never carries what was typed.
        [message] = re.findall(r'<p class="form-error"[^>]*>(.*?)</p>', response.content.decode())
        assert message in REFUSALS
    detail = client.get(reverse("customers:lookup") + quote(typed or "x", safe="") + "/")
    assert detail.status_code in (200, 404)
    assert Customer.objects.count() == 1
