"""Issue 12 item 6 and the insights' rough edges: a zero result says which condition
removed everyone; a condition still waiting for its value is not flagged and keeps the
counts on screen."""

from __future__ import annotations

import json

from django.urls import reverse

from customers.models import Customer
from tests.segments.conftest import attr, one_section


def _insights(client, definition: dict) -> str:
    response = client.post(reverse("segments:insights"), {"definition": json.dumps(definition)})
    assert response.status_code == 200
    return response.content.decode()


def _count(where) -> int:
    return sum(1 for c in Customer.objects.all() if where(c))


def test_a_zero_result_lists_each_conditions_own_count(people, marketer_client):
    definition = one_section(attr("state", "is", "tx"), attr("loyalty_tier", "is", "Bronze"))
    body = _insights(marketer_client, definition)
    assert 'data-testid="unique-count">0<' in body
    texas = _count(lambda c: (c.state or "").lower() == "tx")
    bronze = _count(lambda c: (c.loyalty_tier or "").lower() == "bronze")
    assert texas and bronze  # each keeps someone on its own, together no one
    assert f"State is tx: <b>{texas}</b>" in body
    assert f"Loyalty tier is Bronze: <b>{bronze}</b>" in body


def test_the_condition_that_removes_everyone_is_marked(people, marketer_client):
    definition = one_section(attr("state", "is", "CA"), attr("loyalty_tier", "is", "Platinum"))
    body = _insights(marketer_client, definition)
    california = _count(lambda c: (c.state or "").lower() == "ca")
    assert f"State is CA: <b>{california}</b>" in body
    assert 'class="seg-zero-culprit">Loyalty tier is Platinum: <b>0</b> (removes everyone)' in body


def test_exclusions_that_remove_everyone_are_explained(people, marketer_client):
    definition = one_section(attr("state", "is", "CA"), exclusions=[attr("state", "is", "CA")])
    body = _insights(marketer_client, definition)
    california = _count(lambda c: (c.state or "").lower() == "ca")
    assert f"Before the exclusions the sections keep <b>{california}</b>" in body


def test_a_new_condition_without_its_value_is_not_flagged_and_keeps_the_counts(
    people, marketer_client
):
    definition = one_section(attr("state", "is", "CA"), attr("loyalty_tier", "is", ""))
    body = _insights(marketer_client, definition)
    assert "data-keep-previous" in body
    assert "need fixing" not in body and 'role="alert"><span>' not in body
    assert "Finish the new condition" in body


def test_a_wrong_value_is_still_flagged(people, marketer_client):
    definition = one_section(attr("state", "is", "CA"), attr("birthdate", "is", "yesterday"))
    body = _insights(marketer_client, definition)
    assert "1 condition(s) need fixing" in body and "is not a date" in body
    assert "data-keep-previous" in body
