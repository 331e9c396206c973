"""Journal writes into the state file that every run and every VM's part of a run share.

Each write takes the state lock only for itself, re-reads the file if another process changed it
since this process last wrote it, replaces just the share records it was given, and saves. Writes
that arrive together from several threads go out as one save (a group commit); each caller
returns only once its records are on disk, so the journal stays write-ahead.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from vmshare.state import ShareRecord, State, StateStore

# share key -> its record as it is now, or None when it is forgotten
Changes = dict[str, ShareRecord | None]


@dataclass
class _Request:
    changes: Changes
    done: bool = False
    error: BaseException | None = None


class StateWriter:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._writing = False
        self._cached: State | None = None  # the file as this writer last saved it
        self._seen: tuple[int, int, int] | None = None

    def commit(self, changes: Changes) -> None:
        """Write ``changes`` (copies: the caller may go on changing its records) durably."""
        request = _Request(changes)
        with self._cond:
            self._queue.append(request)
            while not request.done:
                if self._writing:
                    self._cond.wait()
                    continue
                batch, self._queue = self._queue, []
                self._writing = True
                self._cond.release()
                error: BaseException | None = None
                try:
                    self._write(batch)
                except BaseException as exc:  # every caller of the batch hears of it
                    error = exc
                finally:
                    self._cond.acquire()
                    self._writing = False
                for each in batch:
                    each.done, each.error = True, error
                self._cond.notify_all()
        if request.error is not None:
            raise request.error

    def _write(self, batch: list[_Request]) -> None:
        with self.store.locked():
            try:
                state = self._current()
                for request in batch:
                    for key, record in request.changes.items():
                        if record is None:
                            state.shares.pop(key, None)
                        else:
                            state.shares[key] = record
                self.store.save(state)
            except BaseException:
                self._cached = None
                raise
            self._cached, self._seen = state, self._identity()

    def _current(self) -> State:
        """The file's state: this writer's copy unless someone else wrote the file since."""
        if self._cached is not None and self._identity() == self._seen:
            return self._cached
        return self.store.load()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.store.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)
