from __future__ import annotations

from django import forms

from destinations.tiktok.client import Advertiser


class SelectAdvertiserForm(forms.Form):
    advertiser_id = forms.ChoiceField(label="Advertiser account", widget=forms.RadioSelect)
    name = forms.CharField(
        label="Destination name",
        max_length=120,
        required=False,
        help_text="How campaigns show this destination. Defaults to the advertiser's name.",
    )

    def __init__(self, *args, advertisers: list[Advertiser], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["advertiser_id"].choices = [  # type: ignore[attr-defined]
            (a.advertiser_id, f"{a.advertiser_name or 'Unnamed'} ({a.advertiser_id})")
            for a in advertisers
        ]
        if len(advertisers) == 1:
            self.fields["advertiser_id"].initial = advertisers[0].advertiser_id
