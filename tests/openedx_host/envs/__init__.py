"""The host's settings modules, layered as edx-platform's ``lms/envs`` and ``cms/envs``."""
