"""The WS-Management shell operations a WinRM service answers (MS-WSMV): Create, Command,
Receive, Signal and Delete on the ``windows/shell/cmd`` resource, with replies and faults shaped
like the ones Windows sends (RelatesTo = the request's MessageID, a fresh MessageID, faults as
SOAP 1.2 ``s:Fault`` with a ``wsmanfault:WSManFault`` detail and HTTP 500).

A command line goes through the same checks cmd.exe makes (the 8,191-character limit) and then
to ``commandline.run``, which decodes ``powershell ... -EncodedCommand`` and calls the handler.
"""

from __future__ import annotations

import base64
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

S = "http://www.w3.org/2003/05/soap-envelope"
A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_URI = RSP + "/cmd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ANONYMOUS = A + "/role/anonymous"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
DONE = RSP + "/CommandState/Done"
RUNNING = RSP + "/CommandState/Running"
TERMINATE = RSP + "/signal/terminate"

# The codes Windows puts in WSManFault/@Code (winerror.h's ERROR_WSMAN_*)
TIMED_OUT = 2150858793  # Receive: nothing to report within OperationTimeout
SHELL_NOT_FOUND = 2150858843
ACTION_NOT_SUPPORTED = 2150858752
INVALID_RESOURCE_URI = 2150858811

# (script) -> (exit code, stdout, stderr); or (script, stdin text) -> the same
Handler = Callable[[str], tuple[int, str, str]] | Callable[[str, str], tuple[int, str, str]]
Runner = Callable[[str, int], tuple[int, bytes, bytes]]


class Fault(Exception):
    def __init__(self, subcode: str, code: int, text: str, value: str = "s:Sender") -> None:
        super().__init__(text)
        self.subcode, self.code, self.text, self.value = subcode, code, text, value


@dataclass
class Command:
    command_id: str
    done: threading.Event = field(default_factory=threading.Event)
    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    delivered: bool = False
    stdin: list[bytes] = field(default_factory=list)
    # set when the client closed stdin (Send with End="true") or started to Receive without
    # closing it: pywinrm sends its input, if any, between Command and the first Receive
    input_settled: threading.Event = field(default_factory=threading.Event)


_current = threading.local()


def read_stdin(timeout: float = 30.0) -> bytes:
    """What the client sent to the running command's stdin (WS-Man Send): for a handler playing
    a script that reads ``[Console]::In``. Called in the command's thread; blocks until the
    client closed stdin or began receiving output (then nothing more comes)."""
    command: Command = _current.command
    command.input_settled.wait(timeout)
    return b"".join(command.stdin)


@dataclass
class Shell:
    shell_id: str
    owner: str
    codepage: int
    commands: dict[str, Command] = field(default_factory=dict)


def _find(root: ET.Element, path: str) -> ET.Element | None:
    return root.find(path, {"s": S, "a": A, "w": W, "rsp": RSP})


def _text(root: ET.Element, path: str) -> str:
    node = _find(root, path)
    return (node.text or "").strip() if node is not None else ""


def _duration(text: str, default: float) -> float:
    """``PT20S`` / ``PT20.000S`` -> 20.0; WinRM's clients only send seconds."""
    if text.startswith("PT") and text.endswith("S"):
        try:
            return float(text[2:-1])
        except ValueError:
            pass
    return default


class ShellService:
    """The shells of one endpoint; ``run`` executes a command line (see commandline.py)."""

    def __init__(self, run: Runner, machine: str = "WIN-HV01") -> None:
        self._run = run
        self._shells: dict[str, Shell] = {}
        self._lock = threading.Lock()
        self.machine = machine
        self.command_lines: list[str] = []  # every command line that reached the "host"

    @property
    def open_shells(self) -> int:
        with self._lock:
            return len(self._shells)

    def drop_shells(self) -> None:
        """The service stopped: its shells are gone."""
        with self._lock:
            self._shells.clear()

    def handle(self, body: bytes, user: str, endpoint_url: str) -> tuple[int, bytes]:
        """One SOAP request -> (HTTP status, SOAP reply)."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 400, b""
        message_id = _text(root, "s:Header/a:MessageID")
        action = _text(root, "s:Header/a:Action")
        try:
            if _text(root, "s:Header/w:ResourceURI") != CMD_URI:
                raise Fault(
                    "w:InvalidResourceURI",
                    INVALID_RESOURCE_URI,
                    "The WS-Management service cannot process the request. The resource URI "
                    "is not valid or was not found.",
                )
            reply_action, body_xml = self._dispatch(action, root, user, endpoint_url)
        except Fault as fault:
            return 500, self._fault(fault, message_id)
        return 200, _envelope(reply_action, message_id, body_xml)

    def _dispatch(self, action: str, root: ET.Element, user: str, url: str) -> tuple[str, str]:
        if action == TRANSFER + "/Create":
            return TRANSFER + "/CreateResponse", self._create(root, user, url)
        shell = self._shell(root)
        if action == RSP + "/Command":
            return RSP + "/CommandResponse", self._command(root, shell)
        if action == RSP + "/Receive":
            return RSP + "/ReceiveResponse", self._receive(root, shell)
        if action == RSP + "/Signal":
            return RSP + "/SignalResponse", self._signal(root, shell)
        if action == RSP + "/Send":
            return RSP + "/SendResponse", self._send(root, shell)
        if action == TRANSFER + "/Delete":
            with self._lock:
                self._shells.pop(shell.shell_id, None)
            return TRANSFER + "/DeleteResponse", ""
        raise Fault(
            "a:ActionNotSupported",
            ACTION_NOT_SUPPORTED,
            "The WS-Management service cannot process a SOAP header in the request that is "
            "marked as mustUnderstand by the client.",
        )

    def _shell(self, root: ET.Element) -> Shell:
        selector = _find(root, "s:Header/w:SelectorSet/w:Selector[@Name='ShellId']")
        shell_id = (selector.text or "").strip() if selector is not None else ""
        with self._lock:
            shell = self._shells.get(shell_id)
        if shell is None:
            raise Fault(
                "w:InvalidSelectors",
                SHELL_NOT_FOUND,
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed "
                "because the shell was not found on the server. Possible causes are: the "
                "specified ShellId is incorrect or the shell no longer exists on the server. "
                "Provide the correct ShellId or create a new shell and execute the command "
                "again.",
            )
        return shell

    def _create(self, root: ET.Element, user: str, url: str) -> str:
        codepage = 437
        option = _find(root, "s:Header/w:OptionSet/w:Option[@Name='WINRS_CODEPAGE']")
        if option is not None and (option.text or "").strip().isdigit():
            codepage = int((option.text or "").strip())
        shell = Shell(str(uuid.uuid4()).upper(), user, codepage)
        with self._lock:
            self._shells[shell.shell_id] = shell
        sid = escape(shell.shell_id)
        return (
            f"<x:ResourceCreated><a:Address>{escape(url)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_URI}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{sid}</w:Selector></w:SelectorSet>'
            f"</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{sid}</rsp:ShellId><rsp:ResourceUri>{CMD_URI}"
            f"</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S"
            f"</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams>"
            f"<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )

    def _command(self, root: ET.Element, shell: Shell) -> str:
        executable = _text(root, "s:Body/rsp:CommandLine/rsp:Command")
        arguments = [
            (node.text or "")
            for node in root.findall("s:Body/rsp:CommandLine/rsp:Arguments", {"s": S, "rsp": RSP})
        ]
        line = " ".join([executable, *arguments])
        command = Command(str(uuid.uuid4()).upper())
        with self._lock:
            shell.commands[command.command_id] = command
            self.command_lines.append(line)

        def work() -> None:
            _current.command = command
            try:
                command.exit_code, command.stdout, command.stderr = self._run(line, shell.codepage)
            finally:
                command.done.set()

        threading.Thread(target=work, daemon=True, name="wsman-command").start()
        return (
            f"<rsp:CommandResponse><rsp:CommandId>{command.command_id}</rsp:CommandId>"
            "</rsp:CommandResponse>"
        )

    def _command_of(self, shell: Shell, command_id: str) -> Command:
        command = shell.commands.get(command_id)
        if command is None:
            raise Fault(
                "w:InvalidParameter",
                2150858770,
                f"The WinRM Shell client cannot process the request. The command with "
                f"CommandId {command_id} was not found in the shell.",
            )
        return command

    def _receive(self, root: ET.Element, shell: Shell) -> str:
        stream = _find(root, "s:Body/rsp:Receive/rsp:DesiredStream")
        command_id = stream.get("CommandId", "") if stream is not None else ""
        command = self._command_of(shell, command_id)
        command.input_settled.set()
        wait = _duration(_text(root, "s:Header/w:OperationTimeout"), 60.0)
        if not command.done.wait(wait):
            raise Fault(
                "w:TimedOut",
                TIMED_OUT,
                "The WS-Management service cannot complete the operation within the time "
                "specified in OperationTimeout.  ",
                value="s:Receiver",
            )
        cid = quoteattr(command.command_id)
        parts = []
        for name, data in (("stdout", command.stdout), ("stderr", command.stderr)):
            # Windows sends output in pieces; pywinrm joins them
            for start in range(0, len(data), 4096):
                chunk = base64.b64encode(data[start : start + 4096]).decode()
                parts.append(f'<rsp:Stream Name="{name}" CommandId={cid}>{chunk}</rsp:Stream>')
            parts.append(f'<rsp:Stream Name="{name}" CommandId={cid} End="true"></rsp:Stream>')
        command.delivered = True
        return (
            "<rsp:ReceiveResponse>"
            + "".join(parts)
            + f'<rsp:CommandState CommandId={cid} State="{DONE}">'
            + f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState>"
            + "</rsp:ReceiveResponse>"
        )

    def _send(self, root: ET.Element, shell: Shell) -> str:
        stream = _find(root, "s:Body/rsp:Send/rsp:Stream")
        if stream is None or stream.get("Name") != "stdin":
            raise Fault("w:InvalidParameter", 2150858770, "The stream name is not valid.")
        command = self._command_of(shell, stream.get("CommandId", ""))
        command.stdin.append(base64.b64decode((stream.text or "").strip()))
        if stream.get("End", "").lower() == "true":
            command.input_settled.set()
        return "<rsp:SendResponse/>"

    def _signal(self, root: ET.Element, shell: Shell) -> str:
        signal = _find(root, "s:Body/rsp:Signal")
        command_id = signal.get("CommandId", "") if signal is not None else ""
        self._command_of(shell, command_id)
        if _text(root, "s:Body/rsp:Signal/rsp:Code") == TERMINATE:
            with self._lock:
                shell.commands.pop(command_id, None)
        return "<rsp:SignalResponse/>"

    def _fault(self, fault: Fault, relates_to: str) -> bytes:
        text = escape(fault.text)
        body = (
            f"<s:Fault><s:Code><s:Value>{fault.value}</s:Value><s:Subcode>"
            f"<s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code><s:Reason>"
            f'<s:Text xml:lang="en-US">{text}</s:Text></s:Reason><s:Detail>'
            f'<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
            f'Code="{fault.code}" Machine="{escape(self.machine)}"><f:Message>{text}'
            f"</f:Message></f:WSManFault></s:Detail></s:Fault>"
        )
        return _envelope(FAULT_ACTION, relates_to, body)


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{S}" xmlns:a="{A}" '
        f'xmlns:x="{TRANSFER}" xmlns:w="{W}" xmlns:rsp="{RSP}" '
        f'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()
