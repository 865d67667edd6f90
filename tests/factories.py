from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Role, User
from customers.models import Customer, Device, DeviceKind, Order
from destinations.tiktok.normalize import normalize_email, normalize_phone


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    role = Role.MARKETER
    password = factory.django.Password("correct horse battery")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    customer_id = factory.Sequence(lambda n: f"C{n:07d}")
    given_name = factory.Faker("first_name")
    surname = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda o: f"{o.customer_id.lower()}@example.com")
    phone = "+12133734253"
    country = "US"
    state = "CA"
    loyalty_tier = "Gold"
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)
    email_normalized = factory.LazyAttribute(lambda o: (normalize_email(o.email) or ("", ""))[0])
    email_sha256 = factory.LazyAttribute(lambda o: (normalize_email(o.email) or ("", ""))[1])
    phone_e164 = factory.LazyAttribute(
        lambda o: (normalize_phone(o.phone, o.country) or ("", ""))[0]
    )
    phone_sha256 = factory.LazyAttribute(
        lambda o: (normalize_phone(o.phone, o.country) or ("", ""))[1]
    )


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    customer = factory.SubFactory(CustomerFactory)
    kind = DeviceKind.IDFA
    raw_id = factory.Faker("uuid4")
    normalized_id = factory.LazyAttribute(lambda o: o.raw_id.lower())
    sha256 = factory.LazyAttribute(
        lambda o: __import__("hashlib").sha256(o.raw_id.lower().encode()).hexdigest()
    )


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    order_id = factory.Sequence(lambda n: f"O{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    ordered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))
    channel = "web"
    brand = "Northwind"
    product_name = "Trail Shoe"
    product_category = "Footwear"
    quantity = 1
    amount = Decimal("49.90")
    currency = "USD"
