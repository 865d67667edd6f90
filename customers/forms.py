from __future__ import annotations

from django import forms

from customers.csv_columns import ImportKind


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.value.title()) for k in ImportKind])
    file = forms.FileField(label="CSV file (UTF-8)")
