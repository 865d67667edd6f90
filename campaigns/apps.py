from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from campaigns.buckets import register_sqlite_bucket
        from campaigns.usage import campaigns_using
        from segments.usage import USAGE_PROVIDERS

        connection_created.connect(register_sqlite_bucket, dispatch_uid="campaigns_ab_bucket")
        if campaigns_using not in USAGE_PROVIDERS:
            USAGE_PROVIDERS.append(campaigns_using)
