"""Settings of the upstream 4.0 bench project: everything comes from the environment the bench sets."""
import os

SECRET_KEY = 'user-tasks-bench-upstream'
USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
INSTALLED_APPS = ['django.contrib.auth', 'django.contrib.contenttypes', 'user_tasks', 'upstream_project']
DATABASES = {'default': {
    'ENGINE': 'django.db.backends.postgresql',
    'NAME': os.environ['UPSTREAM_BENCH_DB_NAME'],
    'USER': os.environ.get('UPSTREAM_BENCH_DB_USER', ''),
    'PASSWORD': os.environ.get('UPSTREAM_BENCH_DB_PASSWORD', ''),
    'HOST': os.environ['UPSTREAM_BENCH_DB_HOST'],
    'PORT': os.environ.get('UPSTREAM_BENCH_DB_PORT', ''),
}}
if os.environ.get('UPSTREAM_BENCH_CONN_MAX_AGE'):
    DATABASES['default']['CONN_MAX_AGE'] = float(os.environ['UPSTREAM_BENCH_CONN_MAX_AGE'])
if os.environ.get('UPSTREAM_BENCH_DB_REUSE_MAX'):
    CELERY_DB_REUSE_MAX = int(os.environ['UPSTREAM_BENCH_DB_REUSE_MAX'])
CELERY_BROKER_URL = os.environ['UPSTREAM_BENCH_BROKER']
CELERY_RESULT_BACKEND = os.environ['UPSTREAM_BENCH_RESULTS']
CELERY_TASK_DEFAULT_QUEUE = os.environ['UPSTREAM_BENCH_QUEUE']
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
