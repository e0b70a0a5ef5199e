"""SessionSaver: keeps the saved session log (:mod:`consumer_api.sessions.saved`) up to
date, without slowing consumes.

Two kinds of change:

* :meth:`SessionSaver.changed` -- positions moved by consumes, commits, records given back,
  rebalances: it only marks the session (``unsaved``). The saver's thread appends the
  marked sessions every ``interval_s``, so a crash (``kill -9``) loses at most that much of
  those changes.
* :meth:`SessionSaver.put` (a session created, a manual assignment, a seek) and
  :meth:`SessionSaver.drop` (sessions closed or expired): the session's line is appended
  before the call returns -- one small write, whatever the number of sessions.

Lines reach the disk as the log's ``sync_each_append`` says (the flush policy): at once,
or at the thread's next turn, which syncs whatever was appended since the last one.

Once the appends outgrow the log's last rewrite, it is rewritten from the live sessions.
Every write holds ``_write_lock`` (consumes never take it); so a session's lines are in the
order of its states, and a closed session (``closed`` is set before its drop is asked for)
never gets a line after its drop. A failed write is logged and the log rewritten whole at
the next change (an append may have been cut short): the sessions go on working, and may
not survive a restart until a write succeeds. :meth:`stop` rewrites the log a last time and
makes every later call a no-op.

Thread-safety: ``_stopped`` and a session's ``unsaved`` are single attribute writes
(atomic under the GIL); ``_broken`` and the log are guarded by ``_write_lock``.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from consumer_api.sessions.saved import SessionLog, record_of
from consumer_api.sessions.session import Session

log = logging.getLogger(__name__)


class SessionSaver:
    """``live()`` returns the manager's live sessions (without holding anything a consume
    waits on)."""

    def __init__(self, log_file: SessionLog, live: Callable[[], list], interval_s: float = 1.0):
        self.log = log_file
        self.interval_s = interval_s
        self._live = live
        self._write_lock = threading.Lock()
        self._broken = False  # the last write failed: rewrite whole next time
        self._stopped = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- changes ---------------------------------------------------------------------------

    @staticmethod
    def changed(session: Session) -> None:
        """The session changed in a way saved within ``interval_s``."""
        session.unsaved = True

    def put(self, session: Session) -> None:
        """Save the session's state now."""
        with self._write_lock:
            if not session.closed:
                session.unsaved = False
                self._append([{"put": record_of(session)}])

    def drop(self, sessions: list) -> None:
        """Save now that ``sessions`` are gone (closed or expired)."""
        with self._write_lock:
            self._append([{"drop": s.consumer_id} for s in sessions])

    def flush(self) -> None:
        """Save every session marked by :meth:`changed` (and rewrite the log when due), and
        sync what was appended."""
        with self._write_lock:
            marked = [s for s in self._live() if s.unsaved and not s.closed]
            for session in marked:
                session.unsaved = False
            if marked:
                self._append([{"put": record_of(s)} for s in marked])
            if self.log.due_for_rewrite:
                self._rewrite()
            if not (self._stopped or self._broken):
                self._attempt(lambda _nothing: self.log.sync(), None)

    def rewrite(self) -> None:
        """Rewrite the log from the live sessions."""
        with self._write_lock:
            self._rewrite()

    # -- writing (write lock held) ---------------------------------------------------------

    def _append(self, lines: list) -> None:
        if self._stopped:
            return
        if self._broken:
            self._rewrite()
            return
        self._attempt(self.log.append, lines)

    def _rewrite(self) -> None:
        if self._stopped:
            return
        sessions = [s for s in self._live() if not s.closed]
        for session in sessions:
            session.unsaved = False
        self._attempt(self.log.rewrite, [record_of(s) for s in sessions])

    def _attempt(self, write, argument) -> None:
        try:
            write(argument)
        except OSError as exc:
            if not self._broken:
                log.error("cannot save the consumer sessions to %s: %s; they may not "
                          "survive a restart until a write succeeds", self.log.path, exc)
            self._broken = True
            return
        if self._broken:
            log.info("the consumer sessions are saved to %s again", self.log.path)
        self._broken = False

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that saves marked sessions (idempotent)."""
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._run, name="session-saver",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # keep saving
                log.exception("saving the consumer sessions failed")

    def stop(self) -> None:
        """Rewrite the log a last time, with every session as it is, and stop saving
        (idempotent)."""
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._write_lock:
            self._rewrite()
            self._stopped = True
            self.log.close()


class NoSaver:
    """What a manager whose sessions are not saved has instead of a SessionSaver."""

    log = None

    @staticmethod
    def changed(session: Session) -> None:
        pass

    def put(self, session: Session) -> None:
        pass

    def drop(self, sessions: list) -> None:
        pass

    def flush(self) -> None:
        pass

    def rewrite(self) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
