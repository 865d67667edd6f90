"""Where a segment is used: a registry other apps extend, so segments never imports them.

Another app appends a provider at import time (e.g. in its ``AppConfig.ready``)::

    from segments.usage import USAGE_PROVIDERS, Usage

    def campaigns_using(segment):
        return [Usage(label=c.name, url=c.get_absolute_url()) for c in ...]

    USAGE_PROVIDERS.append(campaigns_using)

A segment with usages cannot be deleted or deactivated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.urls import reverse

if TYPE_CHECKING:
    from segments.models import Segment


@dataclass(frozen=True)
class Usage:
    label: str
    url: str


USAGE_PROVIDERS: list[Callable[[Segment], list[Usage]]] = []


def segment_usages(segment: Segment) -> list[Usage]:
    usages: list[Usage] = []
    for provider in USAGE_PROVIDERS:
        usages.extend(provider(segment))
    return usages


def segments_referring_to(segment: Segment) -> list[Usage]:
    """Other segments whose conditions say "in / not in" this segment."""
    from segments.compiler import referenced_segment_ids
    from segments.models import Segment, SegmentKind

    others = Segment.objects.filter(kind=SegmentKind.VISUAL).exclude(pk=segment.pk)
    return [
        Usage(label=f"Segment: {other.name}", url=reverse("segments:detail", args=[other.pk]))
        for other in others.only("pk", "name", "definition")
        if segment.pk in referenced_segment_ids(other.definition)
    ]


USAGE_PROVIDERS.append(segments_referring_to)
