"""
URL of the metrics view; the host mounts it under ``user_tasks/`` (``user_tasks/metrics``).

Layer: adapters.  Hosts include it; nothing in user_tasks imports it.
"""
from django.urls import path

from user_tasks.metrics.views import metrics_view

urlpatterns = [
    path('metrics', metrics_view, name='user_tasks_metrics'),
]
