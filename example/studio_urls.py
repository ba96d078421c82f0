"""Routes of the Studio-shaped export example, with Studio's paths and URL names."""
from django.urls import path

from example import studio_views

urlpatterns = [
    path('export/<str:course_key_string>', studio_views.export_handler, name='export_handler'),
    path('export_status/<str:course_key_string>', studio_views.export_status_handler, name='export_status_handler'),
    path('export_output/<str:course_key_string>', studio_views.export_output_handler, name='export_output_handler'),
]
