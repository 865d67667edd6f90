from django.urls import path

from deliveries import views

app_name = "deliveries"

urlpatterns = [
    path("campaign/<int:campaign_id>/panel/", views.campaign_panel, name="campaign_panel"),
    path("<int:delivery_id>/", views.detail, name="detail"),
    path("<int:delivery_id>/recipients.csv", views.recipients_csv, name="recipients_csv"),
    path("<int:delivery_id>/retry/", views.retry, name="retry"),
]
