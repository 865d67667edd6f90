from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from segments.compiler import CompiledSQL, compile_definition
from segments.runner import fetch_all
from tests.factories import CustomerFactory, DeviceFactory, OrderFactory


def members(compiled: CompiledSQL) -> set[str]:
    return {row[0] for row in fetch_all(compiled)}


def one_section(*conditions, combinator: str = "and", exclusions=()) -> dict:
    return {
        "version": 1,
        "combinator": "and",
        "sections": [{"combinator": combinator, "conditions": list(conditions)}],
        "exclusions": {"combinator": "or", "conditions": list(exclusions)},
    }


def attr(attribute: str, operator: str, value=None, **extra) -> dict:
    return {
        "type": "attribute",
        "attribute": attribute,
        "operator": operator,
        "value": value,
        **extra,
    }


@pytest.fixture
def run():
    def _run(definition: dict) -> set[str]:
        return members(compile_definition(definition))

    return _run


@pytest.fixture
def people(db):
    """Five customers with distinct attributes, orders and devices."""
    now = timezone.now()
    ann = CustomerFactory(
        customer_id="ann",
        email="ann@example.com",
        state="CA",
        loyalty_tier="Gold",
        gender="F",
        birthdate=dt.date(1990, 5, 1),
        email_opt_in=True,
        city="San Diego",
        created_at=now - dt.timedelta(days=10),
    )
    bob = CustomerFactory(
        customer_id="bob",
        email="",
        email_sha256="",
        state="NY",
        loyalty_tier="Silver",
        gender="M",
        birthdate=dt.date(1970, 1, 15),
        email_opt_in=False,
        city="New_York",
        created_at=now - dt.timedelta(days=400),
    )
    cat = CustomerFactory(
        customer_id="cat",
        email="cat@example.org",
        state="",
        loyalty_tier="",
        gender="",
        birthdate=None,
        email_opt_in=None,
        phone="",
        phone_sha256="",
        city="100% Town",
        created_at=now - dt.timedelta(days=40),
    )
    dan = CustomerFactory(
        customer_id="dan",
        state="TX",
        loyalty_tier="Gold",
        gender="M",
        birthdate=dt.date(2001, 12, 31),
        city="Austin",
        created_at=now - dt.timedelta(days=800),
    )
    eve = CustomerFactory(
        customer_id="eve",
        state="CA",
        loyalty_tier="Bronze",
        gender="F",
        birthdate=dt.date(1985, 7, 7),
        city="Fresno",
        created_at=now - dt.timedelta(days=2),
    )
    # ann: two recent web orders (Northwind); bob: one old store order (Contoso);
    # dan: one recent app order + a return; cat, eve: none.
    OrderFactory(
        customer=ann,
        ordered_at=now - dt.timedelta(days=5),
        amount=Decimal("100.00"),
        channel="web",
        brand="Northwind",
        store="Online",
    )
    OrderFactory(
        customer=ann,
        ordered_at=now - dt.timedelta(days=50),
        amount=Decimal("50.00"),
        channel="web",
        brand="Northwind",
        store="Online",
    )
    OrderFactory(
        customer=bob,
        ordered_at=now - dt.timedelta(days=700),
        amount=Decimal("500.00"),
        channel="store",
        brand="Contoso",
        store="Boston",
        product_category="Bags",
    )
    OrderFactory(
        customer=dan,
        ordered_at=now - dt.timedelta(days=20),
        amount=Decimal("20.00"),
        channel="app",
        brand="Contoso",
        store="Online",
    )
    OrderFactory(
        customer=dan,
        ordered_at=now - dt.timedelta(days=19),
        amount=Decimal("20.00"),
        channel="app",
        brand="Contoso",
        store="Online",
        is_return=True,
    )
    DeviceFactory(customer=dan, kind="IDFA")
    DeviceFactory(customer=cat, kind="AAID")
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "eve": eve}
