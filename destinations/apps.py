from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "destinations"

    def ready(self) -> None:
        from accounts.navigation import BANNER_PROVIDERS
        from destinations.banners import reauthorize_banner

        if reauthorize_banner not in BANNER_PROVIDERS:
            BANNER_PROVIDERS.append(reauthorize_banner)
