from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from accounts.models import Role
        from accounts.navigation import BANNER_PROVIDERS, NAV, NavItem
        from notifications.banners import unread_banner

        if not any(item.url_name == "notifications:list" for item in NAV):
            NAV.append(NavItem("Notifications", "notifications:list", Role.VIEWER))
        if unread_banner not in BANNER_PROVIDERS:
            BANNER_PROVIDERS.append(unread_banner)
