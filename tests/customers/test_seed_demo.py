from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
from django.core.management import call_command

from customers.models import Customer, Device, Order

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(
            Customer.objects.order_by("customer_id").values_list(
                "customer_id",
                "given_name",
                "email",
                "phone",
                "phone_e164",
                "country",
                "state",
                "birthdate",
                "loyalty_tier",
                "email_opt_in",
                "created_at",
            )
        ),
        list(
            Device.objects.order_by("customer_id", "kind", "raw_id").values_list(
                "customer_id", "kind", "raw_id", "sha256"
            )
        ),
        list(
            Order.objects.order_by("order_id").values_list(
                "order_id", "customer_id", "ordered_at", "channel", "brand", "amount", "is_return"
            )
        ),
    )


def seed(seed: int, customers: int = 300) -> None:
    call_command("seed_demo", customers=customers, seed=seed, today=dt.date(2025, 6, 1))


def test_same_seed_gives_the_same_data_and_another_seed_different_data():
    seed(7)
    first = snapshot()
    for model in (Order, Device, Customer):
        model.objects.all().delete()
    seed(7)
    assert snapshot() == first
    for model in (Order, Device, Customer):
        model.objects.all().delete()
    seed(8)
    assert snapshot() != first


def test_demo_data_looks_like_a_real_customer_base():
    seed(42, customers=2000)
    customers = Customer.objects.all()
    assert customers.count() == 2000
    countries = Counter(customers.values_list("country", flat=True))
    assert countries["US"] > 1500 and len(countries) >= 6
    assert len(set(customers.filter(country="US").values_list("state", flat=True))) >= 20
    phones = list(customers.values_list("phone", "phone_e164"))
    missing = sum(1 for raw, _ in phones if not raw)
    invalid = sum(1 for raw, e164 in phones if raw and not e164)
    assert 0.03 < missing / 2000 < 0.15 and 0.01 < invalid / 2000 < 0.08
    formats = {re.sub(r"\d", "9", raw) for raw, _ in phones if raw}
    assert len(formats) > 20, "phones come in many national formats"
    assert len({e[:3] for _, e in phones if e}) >= 5, "numbers from several countries"
    emails = list(customers.values_list("email", "email_sha256"))
    assert any(raw and raw == raw.upper() and "@" in raw for raw, _ in emails)
    assert any(raw and not sha for raw, sha in emails), "some emails are invalid"
    assert any(not raw for raw, _ in emails), "some emails are missing"
    assert set(customers.values_list("loyalty_tier", flat=True)) >= {"Bronze", "Gold", ""}
    devices = Device.objects.all()
    per_customer = Counter(devices.values_list("customer_id", flat=True))
    assert 600 < len(per_customer) < 1200 and max(per_customer.values()) == 2
    assert {"IDFA", "AAID"} == set(devices.values_list("kind", flat=True))
    assert devices.filter(sha256="").exists(), "some device ids are invalid"
    orders = Order.objects.all()
    assert orders.count() > 5000
    years = {d.year for d in orders.values_list("ordered_at", flat=True)}
    assert len(years) >= 4
    assert set(orders.values_list("channel", flat=True)) == {"web", "store", "app", "phone"}
    assert len(set(orders.values_list("brand", flat=True))) >= 5
    assert len(set(orders.values_list("product_category", flat=True))) >= 5
    assert orders.filter(is_return=True, amount__lt=0).exists()
