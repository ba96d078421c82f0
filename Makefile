# Developer and CI entry points. Everything runs in a local .venv so a fresh
# clone needs only python3 (>= 3.11) on the PATH.
.PHONY: help venv test test-unit test-integration test-upgrade demo docs openapi translations \
	extract_translations compile_translations validate_translations pull_translations quality bench clean

PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pytest exits 5 when it collects no test; an empty suite is not a failure here.
PYTEST = $(PY) -m pytest
OK_IF_EMPTY = || test $$? -eq 5

help:
	@echo "make demo | test | test-unit | test-integration | test-upgrade | docs | openapi | quality | bench | clean"
	@echo "make extract_translations | compile_translations | validate_translations | pull_translations"

$(PY):
	$(PYTHON_SYS) -m venv $(VENV)

# Re-install only when setup.py changes (the install is editable). The Tutor plugin
# (tutor/, its own distribution, which brings tutor 22.x) is installed in the same pip
# run, so one resolver picks versions that suit both (tests/test_tutor_plugin.py).
$(VENV)/.stamp: setup.py tutor/pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs]' -e ./tutor
	touch $@

$(VENV)/.stamp-demo: setup.py | $(PY)
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.stamp-quality: setup.py | $(PY)
	$(PY) -m pip install -q -e '.[quality]'
	touch $@

venv: $(VENV)/.stamp

# In order, stopping at the first failure (even under make -j).
test:
	$(MAKE) test-unit
	$(MAKE) test-integration
	$(MAKE) test-upgrade

test-unit: $(VENV)/.stamp
	$(PYTEST) tests --ignore=tests/integration --ignore=tests/upgrade -p no:cacheprovider -q $(OK_IF_EMPTY)

# The worker, status-connection and admission scenarios again on psycopg 3 (PostgreSQL's
# driver for many Django 5 hosts), which reads multi-statement strings and errors differently.
PSYCOPG3_TESTS = tests/integration/test_worker.py tests/integration/test_transaction_progress.py \
	tests/integration/test_admission.py tests/integration/test_psycopg.py

test-integration: $(VENV)/.stamp
	@if [ -d tests/integration ]; then \
	  set -e; \
	  USER_TASKS_TEST_DB=postgres USER_TASKS_TEST_BROKER=redis \
	    $(PYTEST) tests/integration -q -p no:cacheprovider $(OK_IF_EMPTY); \
	  USER_TASKS_TEST_DB=mariadb USER_TASKS_TEST_BROKER=rabbitmq \
	    $(PYTEST) tests/integration -q -p no:cacheprovider $(OK_IF_EMPTY); \
	  USER_TASKS_TEST_DB=postgres USER_TASKS_TEST_BROKER=redis USER_TASKS_TEST_PSYCOPG=3 \
	    $(PYTEST) $(PSYCOPG3_TESTS) -q -p no:cacheprovider $(OK_IF_EMPTY); \
	else echo "tests/integration does not exist yet: skipped"; fi

test-upgrade: $(VENV)/.stamp
	@if [ -d tests/upgrade ]; then \
	  $(PYTEST) tests/upgrade -q -p no:cacheprovider $(OK_IF_EMPTY); \
	else echo "tests/upgrade does not exist yet: skipped"; fi

demo: $(VENV)/.stamp-demo
	$(PY) example/demo.py

# Regenerate the committed OpenAPI schema (tests/test_openapi.py fails when it is stale).
openapi: $(VENV)/.stamp
	$(PY) -m django spectacular --settings tests.settings --validate --fail-on-warn --file docs/openapi.yaml

# Translations, in the layout of edx-i18n-tools and openedx-translations (docs/i18n.rst).
# The English source catalog is extracted to user_tasks/conf/locale/en/LC_MESSAGES/django.po
# (next to config.yaml; not committed, nor compiled); the translated catalogs Django loads live in
# user_tasks/locale/<lang>/LC_MESSAGES/ with their compiled .mo files, committed.
# pages.js holds no text (the server sends it translated), so there is no djangojs domain.
I18N_DJANGO = cd user_tasks && PYTHONPATH=$(CURDIR) ../$(PY) -m django
SOURCE_CATALOG = user_tasks/conf/locale/en/LC_MESSAGES

extract_translations: $(VENV)/.stamp
	$(I18N_DJANGO) makemessages -l en -d django --no-location --no-obsolete --settings tests.settings
	mkdir -p $(SOURCE_CATALOG)
	mv user_tasks/locale/en/LC_MESSAGES/django.po $(SOURCE_CATALOG)/django.po
	rm -rf user_tasks/locale/en

# Recompile the committed .mo catalogs from the .po sources (needs gettext's msgfmt).
TRANSLATED = $(patsubst user_tasks/locale/%/LC_MESSAGES/django.po,-l %,$(wildcard user_tasks/locale/*/LC_MESSAGES/django.po))
compile_translations: $(VENV)/.stamp
	$(I18N_DJANGO) compilemessages $(TRANSLATED) --settings tests.settings
translations: compile_translations

# Every catalog: msgfmt's checks (formats, plural forms, header) and the completeness test.
validate_translations: $(VENV)/.stamp
	for po in user_tasks/locale/*/LC_MESSAGES/django.po; do msgfmt --check --statistics -o /dev/null $$po || exit 1; done
	$(PYTEST) tests/test_translations.py -q -p no:cacheprovider

# Translations back from the openedx-translations project (pip install -e .[i18n]).
ATLAS_OPTIONS ?=
pull_translations:
	$(VENV)/bin/atlas pull $(ATLAS_OPTIONS) translations/django-user-tasks/user_tasks/conf/locale:user_tasks/locale
	$(MAKE) compile_translations

docs: $(VENV)/.stamp
	$(VENV)/bin/sphinx-build -W -b html docs docs/_build/html

# ruff (ruff.toml), then the layers and the import graph (.importlinter).
quality: $(VENV)/.stamp-quality
	$(VENV)/bin/ruff check $(wildcard user_tasks tests example bench tutor)
	$(VENV)/bin/lint-imports --config .importlinter

bench: $(VENV)/.stamp
	@for f in bench/*.py; do \
	  [ -e "$$f" ] || continue; \
	  echo "== $$f"; \
	  $(PY) "$$f" || exit 1; \
	done

clean:
	rm -rf docs/_build example/var build dist *.egg-info .tox .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print | xargs rm -rf
