"""
Common settings of the miniature host, ending as edx-platform's ``envs/common.py`` does:
``INSTALLED_APPS.extend(get_plugin_apps(...))`` then ``add_plugins(__name__, ..., 'common')``.
"""
import os
import tempfile
from datetime import timedelta

from edx_django_utils.plugins import add_plugins, get_plugin_apps

HOST_PROJECT = os.environ.get('OPENEDX_HOST_PROJECT', 'cms')
HOST_LAYOUT = os.environ.get('OPENEDX_HOST_LAYOUT', 'plugin')
HOST_WITH_EXAMPLE = os.environ.get('OPENEDX_HOST_EXAMPLE') == '1'
if HOST_PROJECT not in ('cms', 'lms') or HOST_LAYOUT not in ('plugin', 'edx-platform'):
    raise ValueError(f'Unknown host: OPENEDX_HOST_PROJECT={HOST_PROJECT!r} OPENEDX_HOST_LAYOUT={HOST_LAYOUT!r}')
# edx-platform's ProjectType.LMS / ProjectType.CMS
PROJECT_TYPE = f'{HOST_PROJECT}.djangoapp'

WORK_DIR = os.environ.get('OPENEDX_HOST_DIR') or os.path.join(tempfile.gettempdir(), 'user_tasks_openedx_host')
BROKER_DIR = os.path.join(WORK_DIR, 'broker')
os.makedirs(BROKER_DIR, exist_ok=True)

SECRET_KEY = 'openedx-host-tests-only'
DEBUG = False
ALLOWED_HOSTS = ['testserver', 'localhost', '127.0.0.1']
USE_TZ = True
TIME_ZONE = 'UTC'
ROOT_URLCONF = 'tests.openedx_host.urls'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
MEDIA_ROOT = os.path.join(WORK_DIR, 'media')
MEDIA_URL = '/media/'
STATIC_URL = '/static/'

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.path.join(WORK_DIR, 'db.sqlite3'),
        # The worker writes while the test reads; wait for the lock instead of failing.
        'OPTIONS': {'timeout': 30},
    },
}

INSTALLED_APPS = [
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'rest_framework',
    'tests.openedx_host.apps.OpenedxHostConfig',
]
if HOST_LAYOUT == 'edx-platform':
    # As cms/envs/common.py and lms/envs/common.py list it.
    INSTALLED_APPS.append('user_tasks')
    if HOST_PROJECT == 'cms':
        USER_TASKS_MAX_AGE = timedelta(days=7)  # cms/envs/common.py, "DJANGO-USER-TASKS"
if HOST_WITH_EXAMPLE:
    INSTALLED_APPS.append('example.apps.ExampleConfig')

# The REST part of edx-platform's stack (lms/envs/common.py, cms/envs/common.py): the JWT
# cookie reassembly before authentication, and EnsureJWTAuthSettingsMiddleware, which reads
# every API view's ``authentication_classes`` from its class.
MIDDLEWARE = [
    'edx_rest_framework_extensions.middleware.RequestCustomAttributesMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'edx_rest_framework_extensions.auth.jwt.middleware.JwtAuthCookieMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
    'edx_rest_framework_extensions.auth.jwt.middleware.EnsureJWTAuthSettingsMiddleware',
]
# As edx-platform configures DRF: JWT first, then the session (Studio's pages use the session).
REST_FRAMEWORK = {
    'DEFAULT_AUTHENTICATION_CLASSES': [
        'edx_rest_framework_extensions.auth.jwt.authentication.JwtAuthentication',
        'rest_framework.authentication.SessionAuthentication',
    ],
}
JWT_AUTH = {
    'JWT_ISSUER': 'http://127.0.0.1/oauth2',
    'JWT_AUDIENCE': 'openedx-host',
    'JWT_SECRET_KEY': SECRET_KEY,
    'JWT_AUTH_COOKIE_HEADER_PAYLOAD': 'edx-jwt-cookie-header-payload',
    'JWT_AUTH_COOKIE_SIGNATURE': 'edx-jwt-cookie-signature',
}
TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'APP_DIRS': True,
    'OPTIONS': {'context_processors': [
        'django.template.context_processors.request',
        'django.contrib.auth.context_processors.auth',
        'django.contrib.messages.context_processors.messages',
    ]},
}]

_BROKER_OPTIONS = {
    'data_folder_in': BROKER_DIR,
    'data_folder_out': BROKER_DIR,
    'processed_folder': BROKER_DIR,
    'control_folder': BROKER_DIR,
}
if HOST_LAYOUT == 'edx-platform':
    # Old-style names, read without a namespace, as edx-platform's Celery apps do.
    BROKER_URL = 'filesystem://'
    BROKER_TRANSPORT_OPTIONS = _BROKER_OPTIONS
    BROKER_CONNECTION_RETRY_ON_STARTUP = True
    CELERY_ALWAYS_EAGER = False
    CELERY_IGNORE_RESULT = True
    CELERYBEAT_SCHEDULE = {'host.cleanup': {'task': 'host.cleanup', 'schedule': 3600}}
else:
    CELERY_BROKER_URL = 'filesystem://'
    CELERY_BROKER_TRANSPORT_OPTIONS = _BROKER_OPTIONS
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    CELERY_TASK_ALWAYS_EAGER = False
    CELERY_TASK_IGNORE_RESULT = True
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
if HOST_WITH_EXAMPLE:
    # Autodiscovery only imports ``<app>.tasks``; the export task lives in its own module.
    CELERY_IMPORTS = ['example.studio_export']  # the same name with or without the namespace

############################## Plugin Apps ##############################
INSTALLED_APPS.extend(get_plugin_apps(PROJECT_TYPE))
add_plugins(__name__, PROJECT_TYPE, 'common')
