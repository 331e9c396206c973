"""The spec's own checks, the first line of defence of every renderer: a share's source and
target (and the VM's guest settings) with control characters or bytes that are not UTF-8 (a
folder named in another encoding reaches Python as lone surrogates) are refused with one line,
before anything renders them; an accepted one is UTF-8 text without control characters."""

from __future__ import annotations

import os

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from vmshare.errors import SpecError
from vmshare.spec import ShareSpec, shorthand

RENDERER = "spec checks"
undecodable = st.binary(min_size=1, max_size=20).map(lambda b: os.fsdecode(b"/srv/" + b))


@given(source=st.one_of(hostile.path, undecodable), target=st.one_of(hostile.path, undecodable))
@example(source=os.fsdecode(b"/srv/caf\xe9"), target="/mnt/x")
@example(source="/srv/x", target=os.fsdecode(b"/mnt/\xff"))
def test_share_paths_are_refused_or_plain_utf8(source, target):
    hostile.tally(RENDERER)
    try:
        share = ShareSpec(source=source, vm="v", target=target)
    except ValueError as exc:
        assert "\n" not in str(exc).splitlines()[-1]
        return
    for value in (str(share.source), share.target):
        value.encode("utf-8")  # never a lone surrogate
        assert not any(ord(c) < 32 or c == "\x7f" for c in value)


@given(source=undecodable)
def test_the_cli_refuses_an_undecodable_source_with_one_error(source):
    hostile.tally(RENDERER)
    try:
        shorthand(source, "v:/mnt/x")
    except SpecError as exc:
        assert exc.message and "\n" not in exc.message
        return
    source.encode("utf-8")
