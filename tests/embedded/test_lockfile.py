import subprocess
import sys

import pytest

from consumer_api.embedded.lockfile import DataDirLock
from consumer_api.errors import DataDirLocked

HOLD = """
import sys, time
from consumer_api.embedded.lockfile import DataDirLock
lock = DataDirLock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_process_fails_fast_with_a_clear_message(data_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, data_dir], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLocked) as err:
            DataDirLock(data_dir)
        assert "in use by another process" in str(err.value)
        assert str(holder.pid) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock of the killed holder: no stale lock
    DataDirLock(data_dir).release()


def test_lock_is_exclusive_within_a_process_too(data_dir):
    first = DataDirLock(data_dir)
    try:
        with pytest.raises(DataDirLocked):
            DataDirLock(data_dir)
    finally:
        first.release()
    DataDirLock(data_dir).release()


SIBLING = """
import sys, time
from consumer_api.embedded.lockfile import DataDirLock
from consumer_api.errors import DataDirLocked
try:
    lock = DataDirLock(sys.argv[1], sibling_wait_s=float(sys.argv[2]))
except DataDirLocked as exc:
    print("locked out:", exc, flush=True)
    sys.exit(3)
print("got it", flush=True)
"""


def test_a_reloaded_worker_waits_for_its_predecessor(data_dir):
    """Two children of one parent (like gunicorn's old and new worker after a reload): the
    second waits for the first to let go instead of failing."""
    first = subprocess.Popen([sys.executable, "-c", HOLD, data_dir], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "locked"
    second = subprocess.Popen([sys.executable, "-c", SIBLING, data_dir, "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            second.wait(timeout=0.5)  # still waiting while its sibling holds the lock
        first.stdin.close()  # the predecessor finishes and exits
        first.wait(timeout=10)
        assert second.wait(timeout=10) == 0
        assert second.stdout.read().strip() == "got it"
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_a_process_that_is_not_a_sibling_is_refused_at_once_even_when_waiting(data_dir):
    lock = DataDirLock(data_dir)  # held by this process: the child's parent, not a sibling
    try:
        child = subprocess.run([sys.executable, "-c", SIBLING, data_dir, "30"],
                               capture_output=True, text=True, timeout=10)
        assert child.returncode == 3 and "in use by another process" in child.stdout
    finally:
        lock.release()
