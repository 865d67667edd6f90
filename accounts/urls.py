from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from destinations import views as destination_views

app_name = "accounts"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="accounts/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/connections/", destination_views.connections, name="connections"),
    path("settings/users/add/", views.user_add, name="user_add"),
    path("settings/users/<int:pk>/", views.user_edit, name="user_edit"),
]
