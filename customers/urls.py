from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("imports/", views.import_jobs, name="import_jobs"),
    path("imports/upload/", views.import_upload, name="import_upload"),
    path("imports/<int:pk>/errors.csv", views.import_errors, name="import_errors"),
    path("delete/", views.customers_delete_view, name="delete"),
    path("customers/", views.customer_lookup, name="lookup"),
    path("customers/<path:customer_id>/", views.customer_detail, name="customer"),
]
