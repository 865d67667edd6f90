from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from accounts.models import User


@admin.register(User)
class AppUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "restricted_pii", "is_active")
    list_filter = ("role", "restricted_pii", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Access", {"fields": ("role", "restricted_pii")}))  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # As in accounts.services.user_update_access: no one lifts their own PII restriction.
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk == request.user.pk and obj.restricted_pii:
            fields += ("restricted_pii",)
        return fields
