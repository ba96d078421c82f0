"""
The layers of docs/decisions/0006-lifecycle-events-and-observers.rst, checked on the source.

``make quality`` enforces the same rules with import-linter (``.importlinter``); these
tests keep them in the unit layer too, without the quality extras installed.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import user_tasks

PACKAGE = Path(user_tasks.__file__).parent
#: Modules (and their children) that may import user_tasks.metrics.
METRICS_IMPORTERS = ('user_tasks.metrics', 'user_tasks.apps', 'user_tasks.plugin', 'user_tasks.urls',
                     'user_tasks.views', 'user_tasks.pages', 'user_tasks.page_urls')


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _modules():
    return {_module_name(path): path for path in PACKAGE.rglob('*.py')}


def _resolve(module, path, node):
    """The user_tasks modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    for _ in range(max(node.level - 1, 0)):
        package = package.rpartition('.')[0]
    base = node.module or ''
    if node.level:
        base = f'{package}.{base}' if base else package
    return [base] + [f'{base}.{alias.name}' for alias in node.names]


def _graph():
    """module -> the user_tasks modules it imports (anywhere in its body, functions included)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(name for name in _resolve(module, path, node) if name in modules)
        # A package's __init__ importing its own children is not a cycle (the rule).
        graph[module] = {t for t in targets if t != module and not t.startswith(module + '.')}
    return graph


def _cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert 'user_tasks.models' in graph and graph['user_tasks.signals']  # the graph was really read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_only_the_adapters_and_wiring_import_metrics():
    importers = sorted(module for module, targets in _graph().items()
                       if any(t == 'user_tasks.metrics' or t.startswith('user_tasks.metrics.') for t in targets)
                       and not module.startswith(METRICS_IMPORTERS))
    assert importers == []


def test_the_domain_imports_only_the_hub_and_the_leaves():
    allowed = {'user_tasks', 'user_tasks.lifecycle', 'user_tasks.control', 'user_tasks.conf',
               'user_tasks.exceptions', 'user_tasks.recent', 'user_tasks.utils', 'user_tasks.commit',
               'user_tasks.localized', 'user_tasks.status_connection', 'user_tasks.row_insert',
               'user_tasks.status_sql'}
    assert _graph()['user_tasks.models'] <= allowed


_PROBE = '''
import json, sys
from django.conf import settings
settings.configure(
    INSTALLED_APPS=['django.contrib.contenttypes', 'django.contrib.auth', 'user_tasks'],
    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}},
)
from user_tasks import apps
ready = apps.UserTasksConfig.ready
apps.UserTasksConfig.ready = lambda self: None  # everything but the wiring layer
import django
django.setup()
import user_tasks.canvas, user_tasks.models, user_tasks.recovery, user_tasks.retention, user_tasks.signals
import user_tasks.tasks
telemetry = ('prometheus_client', 'opentelemetry', 'user_tasks.metrics')
core = sorted(name for name in sys.modules if name.startswith(telemetry))
ready(django.apps.apps.get_app_config('user_tasks'))
wired = sorted(name for name in sys.modules if name.startswith(telemetry))
print(json.dumps({'core': core, 'wired': bool(wired)}))
'''


def test_the_core_loads_no_telemetry():
    """Importing the core (models, tasks, signals...) loads neither prometheus_client nor opentelemetry."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    env.pop('DJANGO_SETTINGS_MODULE', None)
    result = subprocess.run([sys.executable, '-c', _PROBE], capture_output=True, text=True, env=env,
                            timeout=120, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {'core': [], 'wired': True}
