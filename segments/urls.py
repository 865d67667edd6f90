from django.urls import path

from segments import views

app_name = "segments"

urlpatterns = [
    path("", views.segment_list_view, name="list"),
    path("new/", views.segment_new, name="new"),
    path("compare/", views.segment_compare, name="compare"),
    path("lists/", views.customer_list_view, name="lists"),
    path("editor/", views.editor_op, name="editor"),
    path("insights/", views.insights_view, name="insights"),
    path("<int:pk>/", views.segment_detail, name="detail"),
    path("<int:pk>/edit/", views.segment_edit, name="edit"),
    path("<int:pk>/breakdowns/", views.segment_breakdowns, name="breakdowns"),
    path("<int:pk>/history/", views.segment_history, name="history"),
    path("<int:pk>/members.csv", views.segment_members_csv, name="members_csv"),
    path(
        "<int:pk>/<str:action>/",
        views.segment_action,
        name="action",
    ),
]
