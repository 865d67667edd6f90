from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User


@admin.register(User)
class AppUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "restricted_pii", "is_active")
    list_filter = ("role", "restricted_pii", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Access", {"fields": ("role", "restricted_pii")}))  # type: ignore[misc]
