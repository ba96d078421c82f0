"""
Django settings for the test suite.

The database and broker come from the environment, so one suite runs on SQLite with
an in-memory broker (unit layer) and on PostgreSQL/MariaDB with Redis/RabbitMQ
(integration layer):

- ``USER_TASKS_TEST_DB``: ``sqlite`` (default), ``postgres`` or ``mariadb``
- ``USER_TASKS_TEST_BROKER``: ``memory`` (default), ``redis`` or ``rabbitmq``
- ``USER_TASKS_TEST_POSTGRES`` / ``_MARIADB`` / ``_REDIS`` / ``_RABBITMQ``: addresses,
  with loopback defaults.
- ``USER_TASKS_TEST_PSYCOPG``: ``2`` (default) or ``3``, the PostgreSQL driver.  Django takes
  psycopg 3 whenever it is importable; both are installed, so psycopg is hidden unless 3 is
  asked for (in this process and the workers it starts, which read these settings too).
"""
import os
import sys
import tempfile
from urllib.parse import urlparse

if os.environ.get('USER_TASKS_TEST_PSYCOPG', '2') != '3':
    sys.modules.setdefault('psycopg', None)  # an import of psycopg fails: Django uses psycopg2

try:
    import pymysql
    pymysql.install_as_MySQLdb()
except ImportError:  # pragma: no cover
    pass

BASE_DIR = os.path.dirname(os.path.abspath(__file__))

SERVICES = {
    'postgres': os.environ.get('USER_TASKS_TEST_POSTGRES', 'postgres://postgres@127.0.0.1:5432/user_tasks'),
    'mariadb': os.environ.get('USER_TASKS_TEST_MARIADB', 'mysql://root@127.0.0.1:3306/user_tasks'),
    'redis': os.environ.get('USER_TASKS_TEST_REDIS', 'redis://127.0.0.1:6379/0'),
    'rabbitmq': os.environ.get('USER_TASKS_TEST_RABBITMQ', 'amqp://guest:guest@127.0.0.1:5672//'),
}
DB_KIND = os.environ.get('USER_TASKS_TEST_DB', 'sqlite')
BROKER_KIND = os.environ.get('USER_TASKS_TEST_BROKER', 'memory')


def _database(kind):
    if kind == 'sqlite':
        # A file, not shared-cache memory: the unit layer's in-process worker thread and the
        # test thread use it at once, and shared-cache SQLite fails ("table is locked") rather
        # than waiting.  One file per process keeps concurrent runs apart.
        default = os.path.join(tempfile.gettempdir(), f'user_tasks_unit_{os.getpid()}.sqlite3')
        name = os.environ.get('USER_TASKS_TEST_SQLITE_NAME', default)
        return {'ENGINE': 'django.db.backends.sqlite3', 'NAME': name, 'OPTIONS': {'timeout': 30},
                'TEST': {'NAME': name if name != ':memory:' else None}}
    url = urlparse(SERVICES[kind])
    engine = 'django.db.backends.postgresql' if kind == 'postgres' else 'django.db.backends.mysql'
    name = os.environ.get('USER_TASKS_TEST_DB_NAME', url.path.lstrip('/') or 'user_tasks')
    database = {
        'ENGINE': engine, 'NAME': name, 'USER': url.username or '', 'PASSWORD': url.password or '',
        'HOST': url.hostname, 'PORT': str(url.port or ''),
        # The worker subprocess connects to the very database the test runner created.
        'TEST': {'NAME': name if os.environ.get('USER_TASKS_TEST_DB_NAME') else f'test_{name}'},
    }
    if kind == 'mariadb':
        database['OPTIONS'] = {'charset': 'utf8mb4'}
        # Django's default is READ COMMITTED; the concurrent-publish test also runs InnoDB's own
        # default, REPEATABLE READ, as hosts that configure it do.
        if os.environ.get('USER_TASKS_TEST_MYSQL_ISOLATION'):
            database['OPTIONS']['isolation_level'] = os.environ['USER_TASKS_TEST_MYSQL_ISOLATION']
    return database


DATABASES = {'default': _database(DB_KIND)}

SECRET_KEY = 'user-tasks-tests'
USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
ROOT_URLCONF = 'tests.urls'
MEDIA_ROOT = os.environ.get('USER_TASKS_TEST_MEDIA_ROOT', os.path.join(BASE_DIR, '..', '.test-media'))

INSTALLED_APPS = [
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.messages',
    'django.contrib.sessions',
    'django.contrib.staticfiles',  # the live server serves the pages' JS and CSS
    'rest_framework',
    'user_tasks',
    'tests',
]
MIDDLEWARE = [
    'django.contrib.sessions.middleware.SessionMiddleware',
    # The pages and the API answer in the language the browser asks for (Accept-Language).
    'django.middleware.locale.LocaleMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
]
TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'APP_DIRS': True,
    'OPTIONS': {'context_processors': [
        'django.template.context_processors.request',
        'django.contrib.auth.context_processors.auth',
        'django.contrib.messages.context_processors.messages',
    ]},
}]
AUTHENTICATION_BACKENDS = [
    'rules.permissions.ObjectPermissionBackend',
    'django.contrib.auth.backends.ModelBackend',
]
# The live server (REST fuzzing, browser tests) serves static files under STATIC_URL.
STATIC_URL = '/static/'

# Fast hashing: the REST tests create users and log in with passwords all the time.
PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']

# OpenAPI generation (docs/openapi.yaml) is a test/docs concern: drf-spectacular is an
# optional extra, so only this project, never the package, depends on it.
try:
    import drf_spectacular  # noqa: F401
except ImportError:  # pragma: no cover
    REST_FRAMEWORK = {}
else:
    INSTALLED_APPS.append('drf_spectacular')
    REST_FRAMEWORK = {'DEFAULT_SCHEMA_CLASS': 'drf_spectacular.openapi.AutoSchema'}
    SPECTACULAR_SETTINGS = {
        'TITLE': 'django-user-tasks REST API',
        'DESCRIPTION': 'Statuses and artifacts of user-triggered Celery tasks (user_tasks.urls).',
        'VERSION': 'v0',
        'SERVE_INCLUDE_SCHEMA': False,
        'SCHEMA_PATH_PREFIX': r'/api/tasks/v0',
    }

CELERY_BROKER_URL = {'memory': 'memory://'}.get(BROKER_KIND) or SERVICES[BROKER_KIND]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_PROTOCOL = int(os.environ.get('USER_TASKS_TEST_PROTOCOL', '2'))
CELERY_RESULT_BACKEND = os.environ.get('USER_TASKS_TEST_RESULT_BACKEND', 'cache+memory://')
# Separate queues keep concurrent test runs (and the machine's other users) from sharing tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get('USER_TASKS_TEST_QUEUE', 'user_tasks_tests')

# Recovery thresholds, shortened by the fault tests for the worker subprocesses they start
# (seconds; USER_TASKS_TERMINATE_AFTER is JSON: {"task name": seconds}).
if os.environ.get('USER_TASKS_TEST_HEARTBEAT_INTERVAL'):
    USER_TASKS_HEARTBEAT_INTERVAL = float(os.environ['USER_TASKS_TEST_HEARTBEAT_INTERVAL'])
if os.environ.get('USER_TASKS_TEST_STALE_AFTER'):
    USER_TASKS_STALE_AFTER = float(os.environ['USER_TASKS_TEST_STALE_AFTER'])
if os.environ.get('USER_TASKS_TEST_PENDING_TIMEOUT'):
    USER_TASKS_PENDING_TIMEOUT = float(os.environ['USER_TASKS_TEST_PENDING_TIMEOUT'])
if os.environ.get('USER_TASKS_TEST_TERMINATE_AFTER'):
    import json as _json
    USER_TASKS_TERMINATE_AFTER = _json.loads(os.environ['USER_TASKS_TEST_TERMINATE_AFTER'])

# The observability test's worker (tests/integration/test_observability.py): its metrics
# exporter's address, recycled children, and its spans written to a file (tests/span_file.py).
if os.environ.get('USER_TASKS_TEST_METRICS_PORT'):
    _metrics_host, _, _metrics_port = os.environ['USER_TASKS_TEST_METRICS_PORT'].rpartition(':')
    USER_TASKS_METRICS_PORT = int(_metrics_port)
    if _metrics_host:
        USER_TASKS_METRICS_ADDRESS = _metrics_host
if os.environ.get('USER_TASKS_TEST_METRICS_TOKEN'):
    USER_TASKS_METRICS_TOKEN = os.environ['USER_TASKS_TEST_METRICS_TOKEN']
if os.environ.get('USER_TASKS_TEST_MAX_TASKS_PER_CHILD'):
    CELERY_WORKER_MAX_TASKS_PER_CHILD = int(os.environ['USER_TASKS_TEST_MAX_TASKS_PER_CHILD'])
if os.environ.get('USER_TASKS_TEST_SPAN_FILE'):
    CELERY_IMPORTS = ['tests.span_file']
