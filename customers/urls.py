from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("imports/", views.import_jobs, name="import_jobs"),
    path("imports/upload/", views.import_upload, name="import_upload"),
    path("imports/<int:pk>/errors.csv", views.import_errors, name="import_errors"),
]
