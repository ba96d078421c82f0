"""tutor-contrib-user-tasks: the Tutor plugin of django-user-tasks."""
