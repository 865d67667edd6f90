"""No one stalls the web tier: a count longer than the live timeout moves to a worker."""

from __future__ import annotations

from unittest import mock

from django.urls import reverse

from customers.models import Customer
from segments import services
from segments.fence import SegmentQueryError
from segments.models import Segment
from segments.tasks import refresh_segment_size
from tests.segments.conftest import attr, one_section


def test_a_quick_refresh_counts_in_the_request(people, marketer_client):
    segment = services.segment_create(
        user=marketer_client.user, name="CA", definition=one_section(attr("state", "is", "CA"))
    )
    expected = sum(1 for c in Customer.objects.all() if (c.state or "").lower() == "ca")
    url = reverse("segments:action", args=[segment.pk, "refresh"])
    body = marketer_client.post(url, follow=True).content.decode()
    assert f"{expected:,} customers." in body
    assert Segment.objects.get(pk=segment.pk).last_count == expected


def test_a_slow_refresh_moves_to_a_worker(
    people, marketer_client, django_capture_on_commit_callbacks
):
    segment = services.segment_create(
        user=marketer_client.user, name="CA", definition=one_section(attr("state", "is", "CA"))
    )
    url = reverse("segments:action", args=[segment.pk, "refresh"])
    too_slow = SegmentQueryError("The query took longer than 5 s and was stopped.")
    with (
        mock.patch.object(services, "segment_refresh_count", side_effect=too_slow),
        mock.patch.object(refresh_segment_size, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        body = marketer_client.post(url, follow=True).content.decode()
    assert "a worker counts it" in body
    delay.assert_called_once_with(segment.pk)
    assert Segment.objects.get(pk=segment.pk).last_count is None
    # The worker's task, called as the worker calls it, with the full timeout.
    expected = sum(1 for c in Customer.objects.all() if (c.state or "").lower() == "ca")
    assert refresh_segment_size(segment.pk) == expected
    assert Segment.objects.get(pk=segment.pk).last_count == expected
