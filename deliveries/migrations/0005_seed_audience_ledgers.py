"""Audiences sent before the ledger existed get one, so keep-in-sync goes on against them.

TikTok cannot say what an audience holds. The best record there is: the last fully sent
delivery's recipients of that treatment, with their identifiers as the customer store holds
them now (the types that delivery's mapping sent). That is what the first sync after the
upgrade diffs against. An identifier that changed between that delivery and the upgrade is
not known (the store kept only the new one): its old hash may stay at TikTok; ids a later,
failed delivery added are not known either. Both are the drift the ledger ends from now on.
"""

from django.db import migrations

SOURCES = {
    "EMAIL_SHA256": ("customers", "email_sha256", None),
    "PHONE_SHA256": ("customers", "phone_sha256", None),
    "IDFA_SHA256": ("devices", "sha256", "IDFA"),
    "AAID_SHA256": ("devices", "sha256", "AAID"),
}


def seed(apps, schema_editor):
    DeliveryTarget = apps.get_model("deliveries", "DeliveryTarget")
    DestinationAudience = apps.get_model("deliveries", "DestinationAudience")
    connection = schema_editor.connection
    latest = {}
    for target in (
        DeliveryTarget.objects.exclude(audience_id="")
        .filter(status="sent")
        .select_related("delivery", "treatment")
        .order_by("delivery__scheduled_for", "id")
    ):
        latest[(target.destination_id, target.audience_id)] = target  # the last one wins
    for (destination_id, audience_id), target in latest.items():
        audience, created = DestinationAudience.objects.get_or_create(
            destination_id=destination_id,
            audience_id=audience_id,
            defaults={
                "name": target.audience_name,
                "campaign_id": target.delivery.campaign_id,
                "treatment_id": target.treatment.treatment_id,
                "refresh_mode": target.refresh_mode,
                "seeded_from_snapshot": True,
            },
        )
        DeliveryTarget.objects.filter(
            destination_id=destination_id, audience_id=audience_id
        ).update(destination_audience=audience)
        if not created:
            continue
        for id_type in target.id_schema:
            table, column, kind = SOURCES[id_type]
            alias = "c" if table == "customers" else "d"
            where = f" AND {alias}.kind = %s" if kind else ""
            params = [audience.pk, id_type, target.delivery_id, target.treatment.treatment_id]
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audience_ledger (audience_id, id_type, sha256, customer_id) "
                    f"SELECT %s, %s, {alias}.{column}, MIN(r.customer_id) "
                    f"FROM delivery_recipients r JOIN {table} {alias} "
                    f"ON {alias}.customer_id = r.customer_id "
                    f"WHERE r.delivery_id = %s AND r.treatment_id = %s AND {alias}.{column} <> ''"
                    f"{where} GROUP BY {alias}.{column}",
                    params + ([kind] if kind else []),
                )


def unseed(apps, schema_editor):
    apps.get_model("deliveries", "DestinationAudience").objects.filter(
        seeded_from_snapshot=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0004_audience_ledger")]

    operations = [migrations.RunPython(seed, unseed)]
