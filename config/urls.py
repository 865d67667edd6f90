from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("data/", include("customers.urls")),
    path("segments/", include("segments.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("deliveries/", include("deliveries.urls")),
    path("destinations/", include("destinations.urls")),
    path("notifications/", include("notifications.urls")),
    path("admin/", admin.site.urls),
]
