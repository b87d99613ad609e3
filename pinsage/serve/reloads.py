"""Reloads across the worker processes of ``pinsage serve --workers N``: a few counters in one directory.

Each worker process loads the run itself and answers from its own copy, so a reload has to reach every
one of them. The supervisor makes a private temporary directory holding three small counter files and
a lock file, and every worker checks the counters every :data:`POLL_S` seconds (a thread reading two
small files; nothing is checked per request):

``generation``  the generation every worker should serve. A worker that answers ``POST /reload``
                takes ``lock``, loads the run as generation ``generation + 1`` and, only once that
                load succeeded, writes the new number and swaps its own run; the others see the
                number go up and load the run themselves. A reload that fails writes nothing, so no
                worker moves (the ``409`` answer holds for all of them).
``requested``   how many reloads the supervisor was asked for by SIGHUP (it holds no run itself).
``handled``     the last request taken up: the first worker to see ``requested > handled`` and get
                ``lock`` without waiting makes the reload, as for ``POST /reload``, and writes
                ``handled``, whatever the outcome (so a failed one is reported once, not retried).

Every file is replaced whole (written aside, then renamed over the old one), so a reader sees the old
number or the new one. The lock is an ``flock`` on ``lock``: one reload at a time across the workers.
Nothing here imports fastapi or loads a run: :class:`pinsage.serve.state.RunHolder` does the loading.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pinsage._io import InputError

__all__ = ["POLL_S", "SharedReloads"]

#: how often a worker checks the counters, in seconds
POLL_S = 0.25

_COUNTERS = ("generation", "requested", "handled")


class SharedReloads:
    """The counters of one multi-worker server (see the module docstring).

    Args:
        directory: the directory :meth:`create` laid out.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)

    @classmethod
    def create(cls, directory: str | os.PathLike) -> "SharedReloads":
        """Lay out the counters (all 0) in ``directory`` (which must exist).

        Raises:
            InputError: this system has no ``fcntl`` (multi-worker reloads need POSIX file locks).
        """
        try:
            import fcntl  # noqa: F401
        except ImportError as exc:  # Windows
            raise InputError("--workers above 1 needs a POSIX system (file locks via fcntl)") from exc
        shared = cls(directory)
        for name in _COUNTERS:
            shared._write(name, 0)
        (shared.dir / "lock").touch()
        return shared

    # ----------------------------------------------------------------------------- files
    def _read(self, name: str) -> int:
        try:
            return int((self.dir / name).read_text() or 0)
        except (OSError, ValueError):  # gone (the server is stopping) or never written
            return 0

    def _write(self, name: str, value: int) -> None:
        tmp = self.dir / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(str(int(value)))
        os.replace(tmp, self.dir / name)  # readers see the old number or the new one

    @contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the cross-worker reload lock; yields False (lock not taken) when ``wait`` is False and
        another worker holds it."""
        import fcntl

        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------- counters
    def generation(self) -> int:
        """The generation every worker should serve."""
        return self._read("generation")

    def publish(self, generation: int) -> None:
        """Tell the other workers to load ``generation`` (call it holding :meth:`locked`)."""
        self._write("generation", generation)

    def request(self) -> None:
        """Ask for a reload (the supervisor, on SIGHUP; only it writes this counter)."""
        self._write("requested", self._read("requested") + 1)

    def requested(self) -> int:
        """Reloads asked for by SIGHUP so far."""
        return self._read("requested")

    def handled(self) -> int:
        """The last SIGHUP request a worker took up."""
        return self._read("handled")

    def mark_handled(self, requested: int) -> None:
        """Record that the requests up to ``requested`` were taken up (call it holding :meth:`locked`)."""
        self._write("handled", requested)

    # ----------------------------------------------------------------------------- start-up
    def startup_error(self) -> str | None:
        """Why a worker could not load the run at start-up, if one could not."""
        try:
            return (self.dir / "startup_error").read_text().strip() or None
        except OSError:
            return None

    def record_startup_error(self, message: str) -> None:
        """Leave the reason a worker could not start for the supervisor to report."""
        tmp = self.dir / f".startup_error.{os.getpid()}.tmp"
        tmp.write_text(message)
        os.replace(tmp, self.dir / "startup_error")
