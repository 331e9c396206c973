"""The end of a vSphere session and guest file transfers are bounded when the server is silent."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from vmshare.backends.vsphere.session import close_session
from vmshare.backends.vsphere.transfer import Transfer
from vmshare.errors import BackendUnavailable


class SilentInstance:
    """A ServiceInstance whose server never answers: every call waits."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked = threading.Event()

    def RetrieveContent(self) -> None:  # what Disconnect asks first
        self.asked.set()
        self.release.wait(60)


def test_the_logout_waits_at_most_its_timeout_for_a_silent_server() -> None:
    instance = SilentInstance()
    started = time.monotonic()
    close_session(instance, timeout=0.2)
    waited = time.monotonic() - started
    instance.release.set()
    assert instance.asked.is_set()  # it did try to log out
    assert waited < 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_guest_file_transfer_that_gets_no_answer_names_its_own_deadline(silent_port) -> None:
    transfer = Transfer("127.0.0.1", silent_port, ssl.create_default_context(), timeout=0.3)
    with pytest.raises(BackendUnavailable) as caught:
        transfer.get("https://*/guestFile?id=1&token=2")
    assert caught.value.message == (
        f"the guest file transfer (GET) at https://127.0.0.1:{silent_port} did not answer "
        "within 0.3 s"
    )
