"""Settings of the demo project: SQLite and Celery's filesystem broker, no other server."""
import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
# USER_TASKS_DEMO_VAR moves the database, broker and media elsewhere (the smoke test uses a temp dir).
VAR_DIR = os.environ.get('USER_TASKS_DEMO_VAR') or os.path.join(BASE_DIR, 'var')
BROKER_DIR = os.path.join(VAR_DIR, 'broker')
os.makedirs(BROKER_DIR, exist_ok=True)

SECRET_KEY = 'demo-only-not-secret'
DEBUG = True
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']

INSTALLED_APPS = [
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'rest_framework',
    'user_tasks',
    'example',
]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    # The pages and the API answer in the language the browser asks for (Accept-Language).
    'django.middleware.locale.LocaleMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
]

ROOT_URLCONF = 'example.urls'

TEMPLATES = [
    {
        'BACKEND': 'django.template.backends.django.DjangoTemplates',
        'DIRS': [],
        'APP_DIRS': True,
        'OPTIONS': {
            'context_processors': [
                'django.template.context_processors.request',
                'django.contrib.auth.context_processors.auth',
                'django.contrib.messages.context_processors.messages',
            ],
        },
    },
]

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.path.join(VAR_DIR, 'demo.sqlite3'),
        # The worker and the demo process share the file; wait for locks instead of failing.
        'OPTIONS': {'timeout': 30},
    },
}
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'

USE_TZ = True
TIME_ZONE = 'UTC'
STATIC_URL = '/static/'
MEDIA_ROOT = os.path.join(VAR_DIR, 'media')
MEDIA_URL = '/media/'
LOGIN_URL = '/admin/login/'
# Object permissions (owner or superuser) for the REST API and the pages; see example/apps.py.
AUTHENTICATION_BACKENDS = [
    'rules.permissions.ObjectPermissionBackend',
    'django.contrib.auth.backends.ModelBackend',
]

# Celery: a filesystem "broker" in one folder, shared by the demo and its worker.
CELERY_BROKER_URL = 'filesystem://'
CELERY_BROKER_TRANSPORT_OPTIONS = {
    'data_folder_in': BROKER_DIR,
    'data_folder_out': BROKER_DIR,
    'processed_folder': BROKER_DIR,
    # Exchange bindings (the worker's control/pidbox fan-out); kombu's default is ./control.
    'control_folder': BROKER_DIR,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
