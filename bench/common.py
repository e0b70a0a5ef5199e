"""Helpers shared by the benchmark scripts (``bench/storage_bench.py``, ``server_bench.py``,
``abuse.py``).

Not a script: the benchmarks run as ``python bench/<name>.py`` and import this module
after putting ``bench/`` on ``sys.path``. Covers the environment (data directory, filesystem,
commit), the temporary data directory and its cleanup on any exit (Ctrl-C, SIGTERM, SIGHUP),
progress lines, the results table and the JSON file. See bench/README.rst.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MEMORY_FS = {"tmpfs", "ramfs"}

_progress_tag = "bench"
_created_dirs: list[str] = []  # a --dir that did not exist: removed on exit if empty


# -- output -----------------------------------------------------------------------------------

def set_progress_tag(tag: str) -> None:
    """Name shown in front of every progress line (``[tag] ...``)."""
    global _progress_tag
    _progress_tag = tag


def progress(msg: str) -> None:
    print(f"[{_progress_tag}] {msg}", file=sys.stderr, flush=True)


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.2f} {unit}"
    return f"{n} B"


def percentile(values: list, q: float) -> float | None:
    """Linear interpolation between closest ranks (q in [0, 1]); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def status_text(passed: bool | None, error: str | None = None) -> str:
    """The ``status`` column: ``ERROR`` (the figure could not run), ``-`` (no target),
    ``pass`` or ``FAIL``."""
    if error is not None:
        return "ERROR"
    return "-" if passed is None else ("pass" if passed else "FAIL")


def render_table(rows: list, header_lines: list[str], cols: list) -> str:
    """``header_lines``, then a ruled table. ``cols``: ``(title, getter, right_aligned)``,
    ``getter(i, row)`` with ``i`` the 1-based row number, returning the cell text."""
    cells = [[get(i, r) for _, get, _ in cols] for i, r in enumerate(rows, 1)]
    widths = [max([len(t)] + [len(c[j]) for c in cells]) for j, (t, _, _) in enumerate(cols)]

    def line(values):
        out = []
        for (_, _, right), w, v in zip(cols, widths, values):
            out.append(v.rjust(w) if right else v.ljust(w))
        return "  ".join(out).rstrip()

    title = line([t for t, _, _ in cols])
    rule = "-" * len(title)
    body = [line(c) for c in cells]
    return "\n".join(header_lines + [rule, title, rule] + body + [rule])


def add_output_args(ap, kind: str) -> None:
    """``--json PATH`` and ``--dir DIR`` of a server run (``kind``: the JSON file's prefix)."""
    ap.add_argument("--json", metavar="PATH",
                    help=f"where to write the rows as JSON (default "
                         f"bench/results/{kind}-<timestamp>.json)")
    ap.add_argument("--dir", help="parent of the temporary data directory "
                                  "(default: /work, else the current directory; never tmpfs)")


def parse_only(text: str | None, numbers: set[int], what: str) -> set[int]:
    """The numbers ``--only`` names (comma-separated), all of ``numbers`` without it; exits
    with a message naming ``what`` ("attack", "figure") on any other number or text."""
    span = f"{min(numbers)}-{max(numbers)}"
    if not text:
        return set(numbers)
    try:
        chosen = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise SystemExit(f"--only takes {what} numbers {span}, e.g. --only 1,3 (got {text!r})")
    if not chosen or not chosen <= numbers:
        raise SystemExit(f"--only takes {what} numbers {span} (got {text!r})")
    return chosen


def targets_line(judged: list, bad_labels: list[str]) -> str:
    """``targets met: k/n``, plus the rows that missed theirs (``bad_labels``)."""
    return (f"targets met: {len(judged) - len(bad_labels)}/{len(judged)}"
            + ("" if not bad_labels else " -- FAIL: " + ", ".join(bad_labels)))


def finish(rows: list, label, kind: str, json_arg: str | None, started, meta: dict,
           oddities: list[str]) -> Path:
    """The end of a server run's report: the targets line (``label(row)`` names a row that
    missed its target), a NOTE line per oddity, and the JSON file."""
    judged = [r for r in rows if r.passed is not None or r.error is not None]
    print(targets_line(judged, [label(r) for r in judged if r.status != "pass"]))
    for o in oddities:
        print(f"NOTE: {o}")
    return write_json(json_arg, kind, started,
                      dict(meta=meta, oddities=oddities, rows=row_dicts(rows)))


def row_dicts(rows: list) -> list[dict]:
    """The rows for the JSON file: every dataclass field plus ``status``."""
    return [dict(asdict(r), status=r.status) for r in rows]


def write_json(path_arg: str | None, kind: str, started, doc: dict) -> Path:
    """Write ``doc`` to ``path_arg``, or when that is empty to
    ``bench/results/<kind>-<timestamp>.json``; print the path."""
    path = Path(path_arg) if path_arg else (
        ROOT / "bench" / "results" / f"{kind}-{started:%Y%m%d-%H%M%S}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"json: {path}")
    return path


# -- environment ------------------------------------------------------------------------------

def _unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def fs_type(path: str) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as f:
            for entry in f:
                left, _, right = entry.partition(" - ")
                mnt = _unescape_mount(left.split()[4])
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):  # later entries over-mount earlier ones
                    best, fstype = mnt, right.split()[0]
    except (OSError, IndexError):
        pass
    return fstype


def choose_base_dir(requested: str | None) -> tuple[str, str, list[str]]:
    """``(base_dir, fs_type, warnings)``. Default: /work, else the current directory --
    never a memory filesystem when a disk-backed candidate exists."""
    warnings = []
    if requested:
        base = os.path.abspath(requested)
        missing, d = [], base
        while not os.path.exists(d):
            missing.append(d)  # deepest first: the order remove_created_dirs() removes them in
            d = os.path.dirname(d)
        os.makedirs(base, exist_ok=True)
        _created_dirs.extend(missing)
        fst = fs_type(base)
        if fst in MEMORY_FS:
            warnings.append(f"--dir {base} is on {fst}: figures will not reflect disk storage")
        return base, fst, warnings
    candidates = [c for c in ("/work", os.getcwd())
                  if os.path.isdir(c) and os.access(c, os.W_OK | os.X_OK)]
    for c in candidates:
        fst = fs_type(c)
        if fst not in MEMORY_FS:
            return c, fst, warnings
    base = os.getcwd()
    fst = fs_type(base)
    warnings.append(f"no disk-backed default directory found; using {base} ({fst})")
    return base, fst, warnings


def prepare_base_dir(requested: str | None, min_free: int, fmt=human_bytes,
                     hint: str = "") -> tuple[str, str, list[str]] | None:
    """:func:`choose_base_dir`, its warnings printed, and a check that ``min_free`` bytes
    are free there. ``None`` (after an ``ERROR`` line, ``fmt`` formatting the sizes, and
    removing a --dir it created) when they are not."""
    base, fst, warnings = choose_base_dir(requested)
    for w in warnings:
        progress(f"WARNING: {w}")
    free = shutil.disk_usage(base).free
    if free < min_free:
        progress(f"ERROR: {base} has {fmt(free)} free; need {fmt(min_free)}{hint}")
        remove_created_dirs()
        return None
    return base, fst, warnings


def git_commit(*paths: str, root=ROOT) -> str:
    """Short commit of the repository at ``root`` (default: this checkout), noting
    uncommitted changes under ``paths`` (relative to the repository root; the code a
    benchmark measures)."""
    repo = Path(root)
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", *paths],
                               capture_output=True, text=True, timeout=5)
        where = " or ".join(p + "/" if (repo / p).is_dir() else p for p in paths)
        suffix = f" (+ uncommitted changes in {where})" if dirty.stdout.strip() else ""
        return commit + suffix if commit else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def run_meta(started, quick: bool, base: str, fst: str, **head) -> dict:
    """The start of the JSON ``meta`` block: start time, mode, ``head`` (e.g. the figures
    run), the interpreter and machine, the data directory and its filesystem."""
    return dict(started=started.isoformat(timespec="seconds"),
                mode="quick" if quick else "full", **head,
                python=platform.python_version(), implementation=platform.python_implementation(),
                platform=platform.platform(), cpus=os.cpu_count(), base_dir=base, fs_type=fst)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (/proc/loadavg), or ``?``."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# -- temporary data and cleanup ---------------------------------------------------------------

def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def remove_created_dirs() -> None:
    """Remove the --dir components :func:`choose_base_dir` created, if they are empty."""
    for d in _created_dirs:
        with contextlib.suppress(OSError):
            os.rmdir(d)


def cleanup(workdir: str | None, release=None) -> None:
    """``release()`` (close logs, kill servers, ...), then remove ``workdir`` and the
    --dir components this run created."""
    if release is not None:
        release()
    if workdir and os.path.exists(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
        if os.path.exists(workdir):
            progress(f"warning: could not remove {workdir}; delete it by hand")
    remove_created_dirs()


@contextlib.contextmanager
def temp_workdir(base: str, prefix: str, release=None):
    """A fresh temporary directory under ``base``, always removed on leaving -- also on an
    exception, Ctrl-C, SIGTERM or SIGHUP (both raise KeyboardInterrupt inside the block;
    it prints ``interrupted`` and propagates). ``release()`` runs first (see :func:`cleanup`);
    a second Ctrl-C during cleanup is ignored."""
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    old_hup = signal.signal(signal.SIGHUP, _raise_interrupt)
    workdir = None
    try:
        workdir = tempfile.mkdtemp(prefix=prefix, dir=base)
        yield workdir
    except KeyboardInterrupt:
        progress("interrupted: cleaning up")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # no second interrupt mid-cleanup
        cleanup(workdir, release)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
