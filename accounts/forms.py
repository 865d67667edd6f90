from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from accounts.models import Role, User


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)
    restricted_pii = forms.BooleanField(required=False, label="Restricted PII")
    password = forms.CharField(widget=forms.PasswordInput, strip=False)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


class UserAccessForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["role", "restricted_pii", "is_active"]
