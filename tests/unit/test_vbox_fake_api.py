"""The COM-level fake is checked against pyvbox's own library.py (generated from VirtualBox's
API description): every method and property the fake implements exists on the interface it
stands for, under pyvbox's pythonic name, with the same arguments in the same order."""

from __future__ import annotations

import inspect

import pytest
from tests.testbed.vbox import com
from virtualbox import library
from virtualbox.library_base import pythonic_name

INTERFACES = {
    com.ComVirtualBox: library.IVirtualBox,
    com.ComMachine: library.IMachine,
    com.ComSession: library.ISession,
    com.ComConsole: library.IConsole,
    com.ComSharedFolder: library.ISharedFolder,
    com.ComNetworkAdapter: library.INetworkAdapter,
    com.ComProgress: library.IProgress,
    com.ComGuest: library.IGuest,
    com.ComGuestSession: library.IGuestSession,
    com.ComProcess: library.IGuestProcess,
}


def generated(interface: type, name: str) -> object:
    """The member as library.py generated it, inherited ones too (pyvbox's library_ext replaces
    some with helpers that take other arguments, e.g. IGuest.create_session's timeout_ms)."""
    for cls in interface.__mro__:
        if cls.__module__ == "virtualbox.library" and name in vars(cls):
            return vars(cls)[name]
    return None


def members(fake: type) -> list[tuple[str, object]]:
    return [
        (name, value)
        for name, value in vars(fake).items()
        if not name.startswith("_") and name not in ("__init__",)
    ]


def test_every_com_class_of_the_fake_is_checked():
    classes = {
        value
        for name, value in vars(com).items()
        if inspect.isclass(value) and name.startswith("Com") and value.__module__ == com.__name__
    }
    assert classes == set(INTERFACES)


@pytest.mark.parametrize("fake", list(INTERFACES), ids=lambda c: c.__name__)
def test_the_fake_offers_only_the_interface_s_own_members(fake):
    interface = INTERFACES[fake]
    checked = 0
    for name, value in members(fake):
        real = generated(interface, pythonic_name(name))
        assert real is not None, f"{fake.__name__}.{name}: {interface.__name__} has no such member"
        if isinstance(value, property) or not callable(value):
            assert isinstance(real, property), f"{name} is a method in {interface.__name__}"
        else:
            assert inspect.isfunction(real), f"{name} is a property in {interface.__name__}"
            ours = [pythonic_name(p) for p in inspect.signature(value).parameters][1:]
            theirs = list(inspect.signature(real).parameters)[1:]
            assert ours == theirs, f"{fake.__name__}.{name}{ours} != {interface.__name__}{theirs}"
        checked += 1
    assert checked  # an interface with nothing checked would prove nothing


def test_the_check_catches_a_wrong_argument_list():
    class ComMachine:  # createSharedFolder as VirtualBox 5.x had it: no autoMountPoint
        def createSharedFolder(self, name, hostPath, writable, automount):
            pass

    real = library.IMachine.create_shared_folder
    ours = [pythonic_name(p) for p in inspect.signature(ComMachine.createSharedFolder).parameters]
    assert ours[1:] != list(inspect.signature(real).parameters)[1:]
