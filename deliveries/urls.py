from django.urls import path

from deliveries import views

app_name = "deliveries"

urlpatterns = [
    path("campaign/<int:campaign_id>/panel/", views.campaign_panel, name="campaign_panel"),
    path("campaign/<int:campaign_id>/run-now/", views.run_now, name="run_now"),
    path("<int:delivery_id>/", views.detail, name="detail"),
    path("<int:delivery_id>/recipients.csv", views.recipients_csv, name="recipients_csv"),
    path("<int:delivery_id>/retry/", views.retry, name="retry"),
    path("audiences/", views.audiences, name="audiences"),
    path("audiences/<int:audience_pk>/", views.audience, name="audience"),
    path(
        "audiences/<int:audience_pk>/reconcile/",
        views.audience_reconcile_view,
        name="audience_reconcile",
    ),
]
