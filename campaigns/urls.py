from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("", views.campaign_list_view, name="list"),
    path("new/", views.campaign_new, name="new"),
    path("<int:pk>/", views.campaign_edit, name="edit"),
    path("<int:pk>/name/", views.campaign_name, name="name"),
    path("<int:pk>/audience/", views.campaign_audience, name="audience"),
    path("<int:pk>/first-match/", views.campaign_first_match, name="first_match"),
    path("<int:pk>/sub-audiences/add/", views.sub_add, name="sub_add"),
    path("<int:pk>/sub-audiences/reorder/", views.sub_reorder, name="sub_reorder"),
    path("<int:pk>/sub-audiences/<int:sid>/", views.sub_update, name="sub_update"),
    path("<int:pk>/sub-audiences/<int:sid>/remove/", views.sub_remove, name="sub_remove"),
    path("<int:pk>/sub-audiences/<int:sid>/move/", views.sub_move, name="sub_move"),
    path(
        "<int:pk>/sub-audiences/<int:sid>/treatments/add/",
        views.treatment_add,
        name="treatment_add",
    ),  # fmt: skip
    path(
        "<int:pk>/sub-audiences/<int:sid>/treatments/split-evenly/",
        views.treatment_split_evenly,
        name="treatment_split_evenly",
    ),  # fmt: skip
    path("<int:pk>/treatments/<int:tid>/", views.treatment_update, name="treatment_update"),
    path(
        "<int:pk>/treatments/<int:tid>/remove/", views.treatment_remove, name="treatment_remove"
    ),  # fmt: skip
    path("<int:pk>/destinations/<int:cid>/", views.destination_update, name="destination"),
    path("<int:pk>/attributes/", views.campaign_attributes, name="attributes"),
    path("<int:pk>/timing/", views.campaign_timing, name="timing"),
    path("<int:pk>/launch/", views.campaign_launch, name="launch"),
    path("<int:pk>/schedule/", views.campaign_schedule, name="schedule"),
    path("<int:pk>/unschedule/", views.campaign_unschedule, name="unschedule"),
    path("<int:pk>/delete/", views.campaign_delete, name="delete"),
    path("<int:pk>/archive/", views.campaign_archive, name="archive"),
    path("<int:pk>/duplicate/", views.campaign_duplicate, name="duplicate"),
    path("<int:pk>/counts/", views.campaign_counts_view, name="counts"),
    path("<int:pk>/history/", views.campaign_history_view, name="history"),
]
