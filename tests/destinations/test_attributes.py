from __future__ import annotations

import pytest
from django.urls import reverse

from destinations.models import DefaultAttribute

pytestmark = pytest.mark.django_db


def form_data(destination, **overrides):
    data = {}
    for row in destination.default_attributes.all():
        key = row.destination_attribute
        data[f"{key}-source_table"] = row.source_table
        data[f"{key}-source_attribute"] = row.source_attribute
        if row.enabled:
            data[f"{key}-enabled"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_page_shows_tiktoks_defaults_in_order(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    page = operator_client.get(reverse("destinations:attributes", args=[destination.pk]))
    text = page.content.decode()
    assert (
        text.index(">EMAIL<") < text.index(">PHONE<") < text.index(">IDFA<") < text.index(">AAID<")
    )
    assert "event_channel" in text and "Required" in text


def test_an_operator_enables_idfa_from_devices(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    response = operator_client.post(url, form_data(destination, **{"IDFA-enabled": "on"}))
    assert response.status_code == 302
    idfa = DefaultAttribute.objects.get(destination=destination, destination_attribute="IDFA")
    assert (idfa.enabled, idfa.source_table, idfa.source_attribute) == (True, "devices", "raw_id")


def test_an_unknown_source_column_is_refused_and_nothing_is_saved(
    fake, operator_client, make_destination
):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    data = form_data(
        destination, **{"EMAIL-source_attribute": "e_mail", "PHONE-source_attribute": "email"}
    )
    response = operator_client.post(url, data)
    assert response.status_code == 400
    assert "has no column “e_mail”" in response.content.decode()
    phone = DefaultAttribute.objects.get(destination=destination, destination_attribute="PHONE")
    assert phone.source_attribute == "phone"


def test_identifiers_cannot_come_from_orders(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    response = operator_client.post(url, form_data(destination, **{"EMAIL-source_table": "orders"}))
    assert response.status_code == 400
    assert "must be customers or devices" in response.content.decode()


def test_at_least_one_identifier_must_stay_enabled(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    response = operator_client.post(
        url, form_data(destination, **{"EMAIL-enabled": None, "PHONE-enabled": None})
    )
    assert response.status_code == 400
    assert "Enable at least one identifier" in response.content.decode()
    assert DefaultAttribute.objects.filter(destination=destination, enabled=True).count() == 2


def test_htmx_save_answers_with_the_mapping_fragment_only(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    response = operator_client.post(
        url, form_data(destination, **{"AAID-enabled": "on"}), HTTP_HX_REQUEST="true"
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="mapping"' in text and "<html" not in text and "saved" in text
