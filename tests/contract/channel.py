"""GuestChannelContract: what every guest channel does through ``run(argv, input=, timeout=)``.

Fixture an opt-in provides: ``channel`` (a GuestChannel) and ``side_effects``, a function
``(path) -> bool`` that tells whether a file exists where the channel runs its commands (in the
guest, or on the host for LocalChannel), to prove a hostile argument ran nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from vmshare.errors import GuestError, GuestTimeout
from vmshare.guest.channel import GuestChannel

HOSTILE_ARGV = [
    "it's",
    'dq"x',
    "$(touch /tmp/vmshare-contract-pwned)",
    "`touch /tmp/vmshare-contract-pwned`",
    "a;b",
    "a && b | c > /tmp/vmshare-contract-pwned",
    "new\nline",
    "tab\there",
    "‘’‚‛ unicode ✓ ü",
    "",
    "-n",
    "--",
    "*",
    "~",
    "back\\slash",
]
PWNED = "/tmp/vmshare-contract-pwned"


class GuestChannelContract:
    # Honest differences an implementation declares (the default is the full contract):
    # ssh reports its own failures as exit code 255, so a command's 255 cannot be told apart
    passes_exit_255: bool = True
    # after a missed deadline: True when the command may go on (ssh stops only its client)
    timeout_may_still_run: bool = False
    # how long a stopped command may take to be reported, beyond its deadline (s)
    timeout_slack: float = 25.0

    @pytest.fixture
    def channel(self) -> GuestChannel:
        raise NotImplementedError("an opt-in class provides the channel")

    @pytest.fixture
    def side_effects(self) -> Callable[[str], bool]:
        raise NotImplementedError("an opt-in class says how to see a file where commands run")

    def test_hostile_argv_arrives_intact(self, channel, side_effects):
        result = channel.run(["printf", "%s\\0", *HOSTILE_ARGV])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in HOSTILE_ARGV]
        assert not side_effects(PWNED)

    def test_program_name_with_shell_syntax_is_not_run_by_a_shell(self, channel, side_effects):
        with contextlib.suppress(GuestError):
            channel.run([f"true; touch {PWNED}"])
        assert not side_effects(PWNED)

    def test_stdin_bytes_pass_through_including_nul_and_large(self, channel):
        assert channel.run(["cat"], input=b"through stdin").stdout == b"through stdin"
        data = bytes(range(256)) * 400 + b"\0end"  # > 64 KiB (a pipe's buffer), with NULs
        result = channel.run(["cat"], input=data)
        assert result.exit_code == 0
        assert result.stdout == data

    def test_no_input_means_empty_stdin(self, channel):
        result = channel.run(["sh", "-c", "cat; echo done"])
        assert (result.exit_code, result.stdout) == (0, b"done\n")

    def test_stdout_and_stderr_come_back_exactly_and_apart(self, channel):
        script = r'printf "out\000\377\n\r"; printf "err\001\nline2" >&2'
        result = channel.run(["sh", "-c", script])
        assert result.stdout == b"out\x00\xff\n\r"
        assert result.stderr == b"err\x01\nline2"
        assert result.error_line == "line2"

    @pytest.mark.parametrize("code", [0, 1, 3, 255])
    def test_exit_codes_pass(self, channel, code):
        if code == 255 and not self.passes_exit_255:
            with pytest.raises(GuestError):  # the channel's own failure code: never a result
                channel.run(["sh", "-c", f"exit {code}"])
            return
        assert channel.run(["sh", "-c", f"exit {code}"]).exit_code == code

    def test_a_command_past_its_deadline_is_stopped_and_reported(self, channel):
        started = time.monotonic()
        with pytest.raises(GuestTimeout) as info:
            channel.run(["sleep", "60"], timeout=2)
        assert time.monotonic() - started < 2 + self.timeout_slack
        assert info.value.may_still_run is self.timeout_may_still_run
        assert "did not finish within 2 s" in info.value.message
        assert info.value.hint
        # the channel still works afterwards
        assert channel.run(["echo", "after"]).stdout == b"after\n"

    def test_a_missing_program_gives_a_clear_error(self, channel):
        program = "vmshare-no-such-program"
        try:
            result = channel.run([program, "arg"])
        except GuestError as exc:
            assert program in exc.message
            assert not isinstance(exc, GuestTimeout)
        else:  # a channel that runs argv through the guest's shell: the shell says it
            assert result.exit_code == 127
            assert program.encode() in result.stderr
