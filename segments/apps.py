from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SegmentsConfig(AppConfig):
    name = "segments"

    def ready(self) -> None:
        from segments.roles import segment_role_post_migrate

        post_migrate.connect(segment_role_post_migrate, sender=self)
