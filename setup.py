"""Packaging for django-user-tasks (the clean-room 5.x rebuild)."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def read(*parts):
    """Return the text of a file relative to this one."""
    with open(os.path.join(HERE, *parts), encoding='utf-8') as handle:
        return handle.read()


def get_version():
    """Parse __version__ out of user_tasks/__init__.py without importing it."""
    match = re.search(
        r"""^__version__\s*=\s*['"]([^'"]+)['"]""",
        read('user_tasks', '__init__.py'),
        re.MULTILINE,
    )
    if not match:
        raise RuntimeError('Unable to find __version__ in user_tasks/__init__.py')
    return match.group(1)


INSTALL_REQUIRES = [
    'Django>=4.2,<6.0',
    'celery>=5.3,<6',
    'djangorestframework>=3.14',
    'django-model-utils>=4.0',
    'edx-django-utils>=5.13',
    'rules>=3.0',
    'opentelemetry-api>=1.20',
    'prometheus-client>=0.17',
]

EXTRAS_REQUIRE = {
    'test': [
        'pytest',
        'pytest-django',
        'pytest-timeout',
        'psycopg2-binary',
        # psycopg 3: a pass of the integration suite runs on it (USER_TASKS_TEST_PSYCOPG=3).
        'psycopg[binary]',
        'PyMySQL',
        'redis',
        'opentelemetry-sdk',
        'opentelemetry-instrumentation-celery',
        'PyYAML',
        'drf-spectacular',
        # edx-platform's REST middleware and JWT authentication, run by tests/openedx_host.
        'edx-drf-extensions',
        'schemathesis',
        'playwright',
        'polib',  # the catalog completeness test (tests/test_translations.py)
        'Pillow',  # reads the browser tests' screenshots (a right-to-left progress bar fills from the right)
        'pyinstrument',  # bench/profile.py
    ],
    'docs': [
        'sphinx',
        'sphinx-rtd-theme',
        'drf-spectacular',
    ],
    'demo': [],
    # Open edX translation tooling: edx-i18n-tools (i18n_tool) and openedx-atlas (make pull_translations).
    'i18n': [
        'edx-i18n-tools',
        'openedx-atlas',
    ],
    'quality': [
        'ruff',
        'import-linter',
    ],
}

setup(
    name='django-user-tasks',
    version=get_version(),
    description='Management of user-triggered asynchronous tasks in Django projects',
    long_description=read('README.rst'),
    long_description_content_type='text/x-rst',
    author='user_tasks maintainers',
    license='Apache Software License 2.0',
    packages=find_packages(include=['user_tasks', 'user_tasks.*']),
    include_package_data=True,
    zip_safe=False,
    python_requires='>=3.11',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    # Open edX discovers plugin apps by these groups; only the plugin AppConfig is listed,
    # so it coexists with edx-platform's own 'user_tasks' entry in INSTALLED_APPS.
    entry_points={
        'lms.djangoapp': ['user_tasks = user_tasks.plugin.apps:UserTasksPluginConfig'],
        'cms.djangoapp': ['user_tasks = user_tasks.plugin.apps:UserTasksPluginConfig'],
    },
    keywords='Django Celery asynchronous tasks edx',
    classifiers=[
        'Development Status :: 4 - Beta',
        'Framework :: Django',
        'Framework :: Django :: 4.2',
        'Framework :: Django :: 5.2',
        'Intended Audience :: Developers',
        'License :: OSI Approved :: Apache Software License',
        'Natural Language :: English',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
    ],
)
