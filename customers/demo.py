"""Deterministic, realistic demo data written as the import CSV formats.

One pass over the customers writes three CSV files (customers, devices, orders) with one
random generator, so a seed always yields the same rows for the same `today`, and memory
stays flat for any size. seed_demo then imports the files through the normal import path,
so identity columns are computed exactly as for a customer's own files.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from customers.csv_columns import CUSTOMERS, DEVICES, ORDERS

GIVEN = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Priya",
    "Ashley",
    "Wei",
    "Emily",
    "Andrew",
    "Olivia",
    "Joshua",
    "Sophia",
    "Kevin",
    "Chloe",
    "Brian",
    "Emma",
    "Lucas",
    "Mia",
    "Noah",
    "Amelia",
    "Hiroshi",
    "Ana",
    "Luis",
    "Fatima",
    "Omar",
    "Aisha",
    "Jonas",
    "Lena",
    "Pierre",
    "Camille",
    "Raj",
    "Ananya",
    "Liam",
    "Grace",
    "Mateo",
    "Valentina",
    "Ethan",
    "Zoe",
]
SURNAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Sharma",
    "Kim",
    "Chen",
    "Wang",
    "Muller",
    "Schmidt",
    "Dubois",
    "Moreau",
    "O'Brien",
    "Murphy",
    "Kowalski",
    "Rossi",
]
DOMAINS = (
    ("gmail.com", 40),
    ("yahoo.com", 12),
    ("outlook.com", 10),
    ("hotmail.com", 8),
    ("icloud.com", 10),
    ("aol.com", 3),
    ("proton.me", 2),
    ("comcast.net", 3),
)
STREETS = [
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Blvd",
    "Lake Rd",
    "Park Ave",
    "Hill St",
    "Sunset Blvd",
    "River Rd",
    "Church St",
    "High St",
    "Station Rd",
    "Market St",
]

# state, weight, cities, area codes (real ones, so most generated numbers are valid)
US_STATES = (
    ("CA", 12, ("Los Angeles", "San Francisco", "San Diego", "Sacramento"), (213, 415, 619, 916)),
    ("TX", 9, ("Houston", "Austin", "Dallas", "San Antonio"), (713, 512, 214, 210)),
    ("FL", 7, ("Miami", "Orlando", "Tampa"), (305, 407, 813)),
    ("NY", 6, ("New York", "Buffalo", "Albany"), (212, 716, 518)),
    ("PA", 4, ("Philadelphia", "Pittsburgh"), (215, 412)),
    ("IL", 4, ("Chicago", "Springfield"), (312, 217)),
    ("OH", 3, ("Columbus", "Cleveland"), (614, 216)),
    ("GA", 3, ("Atlanta", "Savannah"), (404, 912)),
    ("NC", 3, ("Charlotte", "Raleigh"), (704, 919)),
    ("MI", 3, ("Detroit", "Grand Rapids"), (313, 616)),
    ("NJ", 3, ("Newark", "Jersey City"), (973, 201)),
    ("VA", 3, ("Richmond", "Arlington"), (804, 703)),
    ("WA", 3, ("Seattle", "Spokane"), (206, 509)),
    ("AZ", 2, ("Phoenix", "Tucson"), (602, 520)),
    ("MA", 2, ("Boston", "Worcester"), (617, 508)),
    ("TN", 2, ("Nashville", "Memphis"), (615, 901)),
    ("IN", 2, ("Indianapolis",), (317,)),
    ("MO", 2, ("St. Louis", "Kansas City"), (314, 816)),
    ("MD", 2, ("Baltimore",), (410,)),
    ("WI", 2, ("Milwaukee", "Madison"), (414, 608)),
    ("CO", 2, ("Denver", "Boulder"), (303, 720)),
    ("MN", 2, ("Minneapolis",), (612,)),
    ("OR", 1, ("Portland",), (503,)),
    ("NV", 1, ("Las Vegas", "Reno"), (702, 775)),
    ("UT", 1, ("Salt Lake City",), (801,)),
    ("LA", 1, ("New Orleans",), (504,)),
    ("KY", 1, ("Louisville",), (502,)),
    ("OK", 1, ("Oklahoma City",), (405,)),
    ("CT", 1, ("Hartford",), (860,)),
    ("IA", 1, ("Des Moines",), (515,)),
    ("KS", 1, ("Wichita",), (316,)),
    ("NM", 1, ("Albuquerque",), (505,)),
    ("HI", 1, ("Honolulu",), (808,)),
    ("AK", 1, ("Anchorage",), (907,)),
)
# country, weight, (state/region, city) choices
OTHER_COUNTRIES = (
    ("GB", 4, (("ENG", "London"), ("ENG", "Manchester"), ("SCT", "Edinburgh"))),
    ("CA", 3, (("ON", "Toronto"), ("BC", "Vancouver"), ("QC", "Montreal"))),
    ("DE", 3, (("BE", "Berlin"), ("BY", "Munich"), ("HH", "Hamburg"))),
    ("FR", 2, (("IDF", "Paris"), ("ARA", "Lyon"))),
    ("IN", 2, (("MH", "Mumbai"), ("KA", "Bengaluru"), ("DL", "Delhi"))),
    ("AU", 1, (("NSW", "Sydney"), ("VIC", "Melbourne"))),
    ("MX", 1, (("CMX", "Mexico City"),)),
    ("ES", 1, (("MD", "Madrid"), ("CT", "Barcelona"))),
)
INVALID_PHONES = ("12345", "000-000-0000", "n/a", "555-PHONE", "+1 (000) 111-2222", "999")
INVALID_EMAILS = ("{g}.{s}@", "{g} at gmail.com", "{g}@@example.com", "{g}.{s}@gmail", "none")
TIERS = (("", 35), ("Bronze", 30), ("Silver", 18), ("Gold", 12), ("Platinum", 5))
GENDERS = (("female", 48), ("male", 45), ("non-binary", 2), ("", 5))
BRANDS = ("Northwind", "Summit Gear", "Lumen Home", "Bloom Beauty", "Kestrel Kids", "Atlas Sport")
CATEGORIES = {
    "Footwear": (("Trail Runner", 119), ("City Sneaker", 89), ("Hiking Boot", 159)),
    "Apparel": (("Rain Jacket", 139), ("Merino Tee", 49), ("Fleece Hoodie", 79), ("Jeans", 69)),
    "Accessories": (("Daypack 20L", 59), ("Beanie", 19), ("Sunglasses", 99)),
    "Home": (("Linen Sheet Set", 149), ("Scented Candle", 24), ("Throw Blanket", 69)),
    "Beauty": (("Face Serum", 42), ("Lip Balm Trio", 12), ("Night Cream", 38)),
    "Outdoor": (("2P Tent", 299), ("Sleeping Bag", 189), ("Camp Stove", 89)),
}
CHANNELS = (("web", 45), ("store", 35), ("app", 15), ("phone", 5))
STORES = (
    "San Francisco Union Square",
    "Los Angeles Grove",
    "New York SoHo",
    "Chicago Michigan Ave",
    "Seattle Pike Place",
    "Austin Domain",
    "Miami Brickell",
    "Denver Cherry Creek",
    "Boston Back Bay",
    "Atlanta Ponce City",
    "London Covent Garden",
    "Toronto Eaton Centre",
)


def _weighted(pairs: tuple) -> tuple[list, list[int]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


@dataclass(frozen=True)
class DemoFiles:
    customers: Path
    devices: Path
    orders: Path


class DemoGenerator:
    def __init__(self, *, seed: int, today: dt.date, orders_per_customer: float = 5.0) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.orders_per_customer = orders_per_customer
        self._now = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
        self._states, self._state_w = _weighted(US_STATES)
        self._countries, self._country_w = _weighted(OTHER_COUNTRIES)
        self._domains, self._domain_w = _weighted(DOMAINS)
        self._tiers, self._tier_w = _weighted(TIERS)
        self._genders, self._gender_w = _weighted(GENDERS)
        self._channels, self._channel_w = _weighted(CHANNELS)
        self._categories = list(CATEGORIES)
        self._order_no = 0

    # ------------------------------------------------------------------ identifiers

    def phone(self, country: str, area_codes: tuple[int, ...]) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.08:
            return ""
        if roll < 0.11:
            return r.choice(INVALID_PHONES)
        if country in ("US", "CA"):
            a, e, n = r.choice(area_codes), r.randint(201, 989), r.randint(0, 9999)
            return r.choice(
                (
                    f"({a}) {e}-{n:04d}",
                    f"{a}-{e}-{n:04d}",
                    f"{a}.{e}.{n:04d}",
                    f"+1 {a} {e} {n:04d}",
                    f"1{a}{e}{n:04d}",
                    f"{a}{e}{n:04d}",
                    f"+1-{a}-{e}-{n:04d} x{r.randint(10, 999)}",
                )
            )
        d = lambda k: "".join(str(r.randint(0, 9)) for _ in range(k))  # noqa: E731
        formats = {
            "GB": (
                f"07{r.randint(400, 999)} {d(6)}",
                f"+44 7{r.randint(400, 999)} {d(6)}",
                f"020 7{d(3)} {d(4)}",
                f"+44 (0)20 7{d(3)} {d(4)}",
            ),
            "DE": (
                f"030 {d(8)}",
                f"+49 30 {d(8)}",
                f"015{r.randint(1, 9)} {d(8)}",
                f"+49 176 {d(8)}",
            ),
            "FR": (
                f"0{r.randint(1, 5)} {d(2)} {d(2)} {d(2)} {d(2)}",
                f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
                f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
            ),
            "IN": (f"+91 9{d(4)} {d(5)}", f"09{d(4)} {d(5)}", f"9{d(9)}"),
            "AU": (f"04{d(2)} {d(3)} {d(3)}", f"+61 4{d(2)} {d(3)} {d(3)}", f"(02) 9{d(3)} {d(4)}"),
            "MX": (f"+52 55 {d(4)} {d(4)}", f"55 {d(4)} {d(4)}"),
            "ES": (f"+34 6{d(2)} {d(2)} {d(2)} {d(2)}", f"6{d(2)} {d(3)} {d(3)}"),
        }
        return r.choice(formats[country])

    def email(self, given: str, surname: str, n: int) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.07:
            return ""
        g, s = given.lower(), surname.lower().replace("'", "")
        if roll < 0.10:
            return r.choice(INVALID_EMAILS).format(g=g, s=s)
        domain = r.choices(self._domains, self._domain_w)[0]
        local = r.choice((f"{g}.{s}", f"{g}{s[0]}", f"{g[0]}{s}", f"{g}_{s}"))
        value = f"{local}{n}@{domain}"
        if roll < 0.15:
            value = value.upper()
        elif roll < 0.17:
            value = f" {value} "
        return value

    def device_id(self, kind: str) -> str:
        r = self.rng
        value = str(uuid.UUID(int=r.getrandbits(128), version=4))
        roll = r.random()
        if roll < 0.02:
            return r.choice(("00000000-0000-0000-0000-000000000000", "unknown", value[:20]))
        if kind == "IDFA":
            value = value.upper()
        if roll < 0.12:
            value = value.replace("-", "")
        return value

    # ---------------------------------------------------------------------- rows

    def customer(self, n: int) -> tuple[list[str], dt.datetime]:
        r = self.rng
        given, surname = r.choice(GIVEN), r.choice(SURNAMES)
        if r.random() < 0.85:
            country = "US"
            state, _, cities, area_codes = US_STATES[
                self._states.index(r.choices(self._states, self._state_w)[0])
            ]
            city = r.choice(cities)
            postal = f"{r.randint(1000, 99950):05d}"
        else:
            country = r.choices(self._countries, self._country_w)[0]
            regions = OTHER_COUNTRIES[self._countries.index(country)][2]
            state, city = r.choice(regions)
            area_codes = (416, 604, 514)
            postal = f"{r.randint(10000, 99999)}"
        created = self._now - dt.timedelta(days=r.randint(0, 6 * 365), seconds=r.randint(0, 86399))
        birth = self.today - dt.timedelta(days=r.randint(18 * 365, 80 * 365))
        flag = lambda: r.choice(("true", "false", "true", "1", "0", ""))  # noqa: E731
        row = [
            f"C{n:08d}",
            given,
            surname,
            self.email(given, surname, n),
            self.phone(country, area_codes),
            f"{r.randint(1, 9999)} {r.choice(STREETS)}",
            city,
            state,
            postal,
            country,
            birth.isoformat() if r.random() < 0.9 else "",
            r.choices(self._genders, self._gender_w)[0],
            r.choices(self._tiers, self._tier_w)[0],
            flag(),
            flag(),
            created.isoformat(timespec="seconds"),
        ]
        return row, created

    def devices(self, customer_id: str) -> Iterator[list[str]]:
        r = self.rng
        if r.random() >= 0.45:
            return
        for _ in range(2 if r.random() < 0.15 else 1):
            kind = "IDFA" if r.random() < 0.55 else "AAID"
            yield [customer_id, kind, self.device_id(kind)]

    def orders(self, customer_id: str, created: dt.datetime) -> Iterator[list[str]]:
        r = self.rng
        # Skewed like real retail: many one-off buyers, a few loyal ones.
        count = int(r.expovariate(1 / self.orders_per_customer)) if r.random() < 0.9 else 0
        first = max(created - dt.timedelta(days=365), self._now - dt.timedelta(days=4 * 365))
        span = max(1, int((self._now - first).total_seconds()))
        brand = r.choice(BRANDS)
        for _ in range(count):
            self._order_no += 1
            if r.random() < 0.3:
                brand = r.choice(BRANDS)
            category = r.choice(self._categories)
            product, price = r.choice(CATEGORIES[category])
            channel = r.choices(self._channels, self._channel_w)[0]
            quantity = 1 if r.random() < 0.8 else r.randint(2, 4)
            amount = price * quantity * r.choice((1, 1, 1, 0.9, 0.8, 0.7))
            is_return = r.random() < 0.06
            ordered = first + dt.timedelta(seconds=r.randint(0, span))
            yield [
                f"O{self._order_no:010d}",
                customer_id,
                ordered.isoformat(timespec="seconds"),
                channel,
                r.choice(STORES) if channel == "store" else "Online",
                brand,
                product,
                category,
                str(quantity),
                f"{-amount if is_return else amount:.2f}",
                "USD",
                "true" if is_return else "false",
            ]

    def write(self, folder: Path, customers: int) -> DemoFiles:
        files = DemoFiles(folder / "customers.csv", folder / "devices.csv", folder / "orders.csv")
        with (
            open(files.customers, "w", newline="", encoding="utf-8") as c,
            open(files.devices, "w", newline="", encoding="utf-8") as d,
            open(files.orders, "w", newline="", encoding="utf-8") as o,
        ):
            cw, dw, ow = csv.writer(c), csv.writer(d), csv.writer(o)
            cw.writerow(CUSTOMERS.column_names)
            dw.writerow(DEVICES.column_names)
            ow.writerow(ORDERS.column_names)
            for n in range(1, customers + 1):
                row, created = self.customer(n)
                cw.writerow(row)
                dw.writerows(self.devices(row[0]))
                ow.writerows(self.orders(row[0], created))
        return files

    def write_customers(self, path: Path, customers: int) -> Path:
        """Only the customers file (the import benchmark)."""
        with open(path, "w", newline="", encoding="utf-8") as c:
            writer = csv.writer(c)
            writer.writerow(CUSTOMERS.column_names)
            for n in range(1, customers + 1):
                writer.writerow(self.customer(n)[0])
        return path
