"""How soon a host edit is seen in the guest, timed on the host's clock alone.

Method: the host rewrites a file in the share's folder (O_TRUNC, then the new content) and
notes its monotonic time; one long-running guest loop reads the guest path every 10 ms and, on
seeing the new value, writes it back into an ack file in the share; the host polls that ack
file every 1 ms and notes when it holds the value. The figure, host write to host seeing the
ack, is an upper bound on the host-to-guest latency: it is over by the guest's ack write (which
the guest times with its own clock, ``ack_cost``) plus at most 1 ms of host polling. It includes
up to 10 ms of the guest's poll interval, as any 10 ms reader would. No two clocks are compared,
and no guest channel round trip is inside a sample: the channel only starts the loop.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vmshare.bench import workloads
from vmshare.bench.stats import Visibility
from vmshare.errors import GuestError
from vmshare.guest.channel import GuestChannel, GuestResult

POLL = 0.01  # s: the guest reader's interval
HOST_POLL = 0.001  # s: the host's poll of the ack file
READY_TIMEOUT = 60.0  # s: for the guest loop to start and see the first value


def method(samples: int, gap: float, timeout: float) -> str:
    return (
        f"{samples} samples: the host rewrites a file in the share's folder {gap:g} s after the "
        "guest saw the previous value (alternately in place with the same size, and truncated "
        f"to a new size); a guest loop reads it every {POLL * 1000:g} ms and writes "
        "each new value to an ack file in the share, which the host polls every "
        f"{HOST_POLL * 1000:g} ms. Latency = host write to host seeing the ack, on the host's "
        "clock only: an upper bound, over by at most the guest's ack write (ack_cost, guest "
        f"clock) + {HOST_POLL * 1000:g} ms; it includes up to {POLL * 1000:g} ms of poll "
        f"interval. A value unseen after {timeout:g} s counts as {timeout:g} s in p50/p95."
    )


def _value(path: Path) -> int:
    """The N of "sNe" in path, -1 when absent or partly written."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return -1
    if text.startswith("s") and text.endswith("e") and text[1:-1].isdigit():
        return int(text[1:-1])
    return -1


def resizes(value: int) -> bool:
    """Whether rewrite ``value`` changes the file's size: every other one does. Sizes go
    short, long, long, short, short...: a rewrite that keeps the size is done in place, one
    that changes it truncates first (the two ways editors save, which caches treat apart)."""
    return value % 2 == 1


def _content(value: int) -> str:
    width = 32 if (value + 1) // 2 % 2 else 24  # value 0: 24, 1-2: 32, 3-4: 24, ...
    return f"s{value}e".ljust(width - 1, "x") + "\n"


def _write(path: Path, value: int, owner: tuple[int, int]) -> float:
    """Rewrite path with value; the host time the rewrite began."""
    data = _content(value).encode()
    started = time.monotonic()
    if value and not resizes(value):
        with open(path, "r+b") as f:  # same size, in place: only the bytes and times change
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    if os.geteuid() == 0:
        os.chown(path, *owner)  # a network share's squashed owner deletes it at the end
    return started


def _wait(ack: Path, value: int, deadline: float) -> float | None:
    while True:
        if _value(ack) >= value:
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(HOST_POLL)


def measure(
    channel: GuestChannel,
    guest_dir: str,
    host_dir: Path,
    stop_file: str,
    *,
    samples: int,
    timeout: float,
    gap: float = 0.2,
    progress: Callable[[int], None] | None = None,
) -> Visibility:
    """``samples`` host rewrites of a file in ``host_dir`` seen at ``guest_dir`` (the same
    folder, in the guest). ``stop_file`` (guest-local) ends the guest loop early."""
    polled, ack = host_dir / "vis.txt", host_dir / "vis.ack"
    st = host_dir.stat()
    owner = (st.st_uid, st.st_gid)
    _write(polled, 0, owner)
    ticks = max(1, int(timeout / POLL))
    command = workloads.argv(
        workloads.POLLER,
        f"{guest_dir}/vis.txt",
        f"{guest_dir}/vis.ack",
        str(samples),
        str(ticks),
        stop_file,
    )
    # the loop may spend `timeout` per sample, with 10 ms polls that run late under load
    budget = READY_TIMEOUT + samples * (2 * timeout + gap) + 60
    box: dict[str, GuestResult | BaseException] = {}

    def poll() -> None:
        try:
            box["result"] = channel.run(command, timeout=budget)
        except BaseException as exc:  # reported by the main thread
            box["error"] = exc

    thread = threading.Thread(target=poll, name="vmshare-bench-poller", daemon=True)
    thread.start()
    try:
        ready = time.monotonic() + READY_TIMEOUT
        while _wait(ack, 0, min(ready, time.monotonic() + 0.5)) is None:
            if not thread.is_alive() or time.monotonic() > ready:
                raise _failed(box, "the guest reader did not start")
        delays: list[float | None] = []  # per rewrite; None: unseen
        for value in range(1, samples + 1):
            time.sleep(gap)
            started = _write(polled, value, owner)
            seen = _wait(ack, value, started + timeout)
            delays.append(None if seen is None else seen - started)
            if progress is not None:
                progress(value)
        thread.join(timeout=timeout + 60)
    except BaseException:
        channel_stop(channel, stop_file)
        thread.join(timeout=30)
        raise
    result = box.get("result")
    if not isinstance(result, GuestResult) or result.exit_code != 0:
        raise _failed(box, "the guest reader failed")
    out = workloads.parse(result.stdout)
    return Visibility(
        samples=samples,
        latencies=[d for d in delays if d is not None],
        unseen=sum(1 for d in delays if d is None),
        resized=[resizes(value) for value in range(1, samples + 1)],
        delays=delays,
        ack_cost=out.timings.get("ack_cost"),
        method=method(samples, gap, timeout),
        timeout=timeout,
    )


def channel_stop(channel: GuestChannel, stop_file: str) -> None:
    """Ask the guest loop to end (best effort: the bench dir's removal follows)."""
    with contextlib.suppress(GuestError):
        channel.run(["touch", stop_file], timeout=30)


def _failed(box: dict[str, GuestResult | BaseException], what: str) -> GuestError:
    error = box.get("error")
    if isinstance(error, GuestError):
        return GuestError(f"{what}: {error.message}", hint=error.hint)
    result = box.get("result")
    detail = result.error_line if isinstance(result, GuestResult) else "no answer"
    return GuestError(
        f"visibility test: {what} ({detail})",
        hint="check that the share is mounted at that path; --samples 0 skips this test",
    )
