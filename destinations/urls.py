from django.urls import path

from destinations import views

app_name = "destinations"

urlpatterns = [
    path("", views.destination_list, name="list"),
    path("connect/", views.destination_connect, name="connect"),
    path("tiktok/callback/", views.tiktok_callback, name="tiktok_callback"),
    path("tiktok/select/", views.select_advertiser, name="select_advertiser"),
    path("tiktok/cancel/", views.cancel_pending, name="cancel_pending"),
    path("<int:pk>/", views.destination_detail, name="detail"),
    path("<int:pk>/reauthorize/", views.destination_reauthorize_view, name="reauthorize"),
    path("<int:pk>/disconnect/", views.destination_disconnect_view, name="disconnect"),
    path("<int:pk>/check/", views.destination_check_view, name="check"),
    path("<int:pk>/attributes/", views.default_attributes, name="attributes"),
]
