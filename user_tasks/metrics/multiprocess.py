"""
Multi-process metrics: collecting from ``PROMETHEUS_MULTIPROC_DIR``, and keeping it small.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before Python starts), every process writes
its samples to ``<type>_<pid>.db`` files there; the web ``/metrics`` view and the
worker's exporter read them all.  A process that exits leaves its files behind, and
a worker recycling children (``--max-tasks-per-child``) would leave a few more per
recycled child, for ever.  Here a dead process's counters, histograms and summaries
are *merged* into one ``<type>_archive.db`` per type (sums, so totals survive), then
its files are deleted; its ``live*`` gauges are simply deleted (the library's
``mark_process_dead``).  The directory then holds at most one file per type and live
process, plus one archive per type (docs/decisions/0005-metrics-files-bounded.rst).

Merging and reading take an ``fcntl`` lock on ``.user_tasks.lock`` in the directory
(exclusive to merge, shared to read), so a scrape through this module never sees a
value both in the archive and in the dead process's file.

Files never outlive their boot: after a container or machine restart pids start again
from 1, and a new process whose pid an old one had would reopen that old file (a
phantom ``in_progress``, counters that did not start from zero).  ``claim()`` runs at
every process start, before the first sample is written: the directory keeps the boot
id it was last used in (``.user_tasks.boot``), and a directory from another boot, or
from before this check, is emptied first (docs/decisions/0009-multiprocess-boot-id.rst).

Layer: adapters (inside ``user_tasks.metrics``).  Imports ``metrics.prometheus``.
"""
import fcntl
import logging
import os
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.mmap_dict import MmapedDict

from user_tasks.metrics.prometheus import telemetry_error

LOG = logging.getLogger(__name__)

ARCHIVE = 'archive'
LOCK_NAME = '.user_tasks.lock'
BOOT_NAME = '.user_tasks.boot'
#: File prefixes whose values add up across processes, and so can be merged by summing.
_SUMMED = ('counter', 'histogram', 'summary')
#: Gauge modes that reduce across processes with a simple function.
_REDUCED = {'gauge_sum': sum, 'gauge_max': max, 'gauge_min': min}


def directory():
    """The multiprocess directory, or None in single-process mode."""
    return os.environ.get('PROMETHEUS_MULTIPROC_DIR') or os.environ.get('prometheus_multiproc_dir') or None


@contextmanager
def _locked(path, exclusive):
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(path):
    try:
        with open(path, encoding='ascii') as stream:
            return stream.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def boot_id():
    """
    An id of this boot of the machine *or container*: the kernel's boot id and pid 1's start time.

    A container restart keeps the kernel (same ``boot_id``) but starts a new pid 1 in the
    container's pid namespace, whose start time (in clock ticks since boot) differs.
    """
    parts = [_read('/proc/sys/kernel/random/boot_id') or '']
    stat = _read('/proc/1/stat')
    if stat and ')' in stat:
        fields = stat.rsplit(')', 1)[1].split()
        parts.append(fields[19] if len(fields) > 19 else '')  # field 22 of proc(5): starttime
    return ':'.join(parts)


def claim(path=None, current=None):
    """
    Make the directory this boot's before this process writes to it; return the files removed.

    Same boot: nothing happens (other processes of this boot keep their files).  Another
    boot, or no boot recorded: every ``.db`` file is removed, then this boot is recorded.
    """
    path = path or directory()
    if not path:
        return 0
    try:
        current = current if current is not None else boot_id()
        boot_file = os.path.join(path, BOOT_NAME)
        if _read(boot_file) == current:
            return 0
        removed = 0
        with _locked(path, exclusive=True):
            if _read(boot_file) == current:
                return 0  # another process of this boot claimed it meanwhile
            for name in os.listdir(path):
                if name.endswith('.db'):
                    os.remove(os.path.join(path, name))
                    removed += 1
            with open(boot_file + '.tmp', 'w', encoding='ascii') as stream:
                stream.write(current)
            os.replace(boot_file + '.tmp', boot_file)
        if removed:
            LOG.warning('user_tasks metrics: removed %d files of an earlier boot from %s', removed, path)
        return removed
    except Exception:  # noqa: BLE001  telemetry never breaks a process start
        telemetry_error('merge')
        return 0


def _split(filename):
    """(prefix, pid) of a ``<prefix>_<pid>.db`` file name, e.g. ('gauge_livesum', '123')."""
    stem = filename[:-3]
    prefix, _, pid = stem.rpartition('_')
    return prefix, pid


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_pids(path):
    """Pids with files in ``path`` that no longer run."""
    pids = set()
    for name in os.listdir(path):
        if name.endswith('.db'):
            pid = _split(name)[1]
            if pid.isdigit() and int(pid) != os.getpid():
                pids.add(int(pid))
    return {pid for pid in pids if not _alive(pid)}


def _merge_into(path, prefix, sources, reduce):
    archive = os.path.join(path, f'{prefix}_{ARCHIVE}.db')
    values = {}
    for source in ([archive] if os.path.exists(archive) else []) + sources:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(source):
            if key in values:
                values[key] = (reduce((values[key][0], value)), max(values[key][1], timestamp))
            else:
                values[key] = (value, timestamp)
    if not values:
        return
    merged = MmapedDict(archive)
    try:
        for key, (value, timestamp) in values.items():
            merged.write_value(key, value, timestamp)
    finally:
        merged.close()


def retire(pids, path=None):
    """Merge the files of exited processes ``pids`` into the archives and delete them."""
    path = path or directory()
    if not path or not pids:
        return 0
    pids = {str(pid) for pid in pids}
    removed = 0
    with _locked(path, exclusive=True):
        groups = {}
        for name in os.listdir(path):
            if not name.endswith('.db'):
                continue
            prefix, pid = _split(name)
            if pid in pids:
                groups.setdefault(prefix, []).append(os.path.join(path, name))
        for prefix, files in groups.items():
            if prefix in _SUMMED:
                _merge_into(path, prefix, files, sum)
            elif prefix in _REDUCED:
                _merge_into(path, prefix, files, _REDUCED[prefix])
            elif not prefix.startswith('gauge_live'):
                continue  # 'all'/'mostrecent' gauges: left as the library leaves them
            for name in files:
                os.remove(name)
                removed += 1
    return removed


def sweep(path=None):
    """Retire every process with files in the directory that is no longer running."""
    path = path or directory()
    if not path:
        return 0
    try:
        return retire(dead_pids(path), path)
    except Exception:  # noqa: BLE001  telemetry never breaks a scrape or a worker
        telemetry_error('merge')
        return 0


def mark_process_dead(pid, path=None):
    """For process managers' exit hooks (gunicorn ``child_exit``): retire ``pid``'s files."""
    try:
        return retire([pid], path)
    except Exception:  # noqa: BLE001  telemetry never breaks a scrape or a worker
        telemetry_error('merge')
        return 0


class _LockedCollector:
    """Collects the directory under the shared lock, after retiring dead processes."""

    def __init__(self, path):
        self.path = path
        self._collector = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self):
        sweep(self.path)
        with _locked(self.path, exclusive=False):
            return list(self._collector.collect())


def registry():
    """The registry a scrape should read: the multiprocess directory, else the default registry."""
    path = directory()
    if not path:
        return REGISTRY
    collecting = CollectorRegistry()
    collecting.register(_LockedCollector(path))
    return collecting

