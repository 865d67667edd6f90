from __future__ import annotations

from django import forms

from customers.csv_columns import ImportKind


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.value.title()) for k in ImportKind])
    file = forms.FileField(label="CSV file (UTF-8)")
    replace = forms.BooleanField(required=False)


class CustomerDeleteForm(forms.Form):
    customer_ids = forms.CharField(
        label="Customer ids, one a line",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=2_000_000,
    )
    confirm = forms.BooleanField(
        label="Delete these customers with their devices and orders", required=True
    )

    MAX_IDS = 50_000

    def clean_customer_ids(self) -> list[str]:
        ids = [line.strip() for line in self.cleaned_data["customer_ids"].splitlines()]
        ids = [i for i in ids if i]
        if not ids:
            raise forms.ValidationError("Enter at least one customer id.")
        if len(ids) > self.MAX_IDS:
            raise forms.ValidationError(
                f"At most {self.MAX_IDS:,} ids at a time here; use the delete_customers "
                "command for more."
            )
        if any(len(i) > 64 for i in ids):
            raise forms.ValidationError("A customer id is at most 64 characters.")
        return ids
