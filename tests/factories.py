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


# -- segments, campaigns, destinations, deliveries, imports, notifications ---------------
# Used by tests/security (the role matrix and the fuzz tests) to build one of everything a
# URL can point at.


def state_definition(*states: str) -> dict:
    """A visual definition: customers whose state is one of `states`."""
    return {
        "version": 1,
        "combinator": "and",
        "sections": [
            {
                "combinator": "and",
                "conditions": [
                    {
                        "type": "attribute",
                        "attribute": "state",
                        "operator": "in",
                        "value": list(states),
                    }
                ],
            }
        ],
        "exclusions": {"combinator": "or", "conditions": []},
    }


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "segments.Segment"

    name = factory.Sequence(lambda n: f"Segment {n}")
    status = "active"
    kind = "visual"
    definition = factory.LazyFunction(lambda: state_definition("CA"))
    sql = ""


class CustomerListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "segments.CustomerList"

    name = factory.Sequence(lambda n: f"List {n}")
    size = 0


class DestinationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "destinations.Destination"

    name = factory.Sequence(lambda n: f"TikTok {n}")
    advertiser_id = factory.Sequence(lambda n: f"{7000000000000000001 + n}")
    advertiser_name = "Northwind Outdoor Co."
    status = "connected"


class CampaignFactory(factory.django.DjangoModelFactory):
    """A draft campaign built by the service, so it has its Remaining group and treatments."""

    class Meta:
        model = "campaigns.Campaign"

    name = factory.Sequence(lambda n: f"Campaign {n}")
    created_by = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from campaigns.services import campaign_create

        return campaign_create(user=kwargs["created_by"], name=kwargs["name"])


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "deliveries.Delivery"

    campaign = factory.SubFactory(CampaignFactory)
    scheduled_for = factory.LazyFunction(timezone.now)


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "customers.ImportJob"

    kind = "customers"
    original_name = "customers.csv"
    file_path = "imports/customers.csv"


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "notifications.Notification"

    user = factory.SubFactory(UserFactory)
    title = "Something happened"
    url = "/campaigns/"
