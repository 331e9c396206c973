"""No shell strings anywhere in vmshare: a walk over the source's syntax trees.

Refused: ``shell=True``, ``os.system``, ``os.popen``, ``subprocess.getoutput`` and
``getstatusoutput``, a subprocess call given one string, and ``sh -c`` with a script built at run
time. A ``sh -c`` script must be fixed text: a literal or a module-level constant made of
literals (values reach it only as positional parameters, ``"$1"``). A script that arrives as a
parameter of a helper is followed to every call of that helper in its module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import vmshare

SOURCE = Path(vmshare.__file__).parent
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "/bin/sh", "/bin/bash", "/usr/bin/sh"}
BANNED_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
}
SUBPROCESS_RUNNERS = {"run", "Popen", "call", "check_call", "check_output"}


def _fixed_text(node: ast.expr) -> bool:
    """A string made of literals only (no f-string, no .format, no names)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _fixed_text(node.left) and _fixed_text(node.right)
    return False


def _module_constants(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and _fixed_text(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
            and _fixed_text(node.value)
        ):
            names.add(node.target.id)
    return names


def _imported_constants(tree: ast.Module) -> set[str]:
    """Names imported from another vmshare module that are fixed-text constants there."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vmshare."):
            path = SOURCE.parent / Path(*node.module.split("."))  # type: ignore[union-attr]
            file = (
                path.with_suffix(".py")
                if path.with_suffix(".py").exists()
                else path / "__init__.py"
            )
            constants = _module_constants(ast.parse(file.read_text()))
            names |= {a.asname or a.name for a in node.names if a.name in constants}
    return names


def _dotted(node: ast.expr) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        return (*_dotted(node.value), node.attr)
    return ()


def _shell_scripts(node: ast.List | ast.Tuple) -> Iterator[ast.expr]:
    """The script argument of every ``sh -c SCRIPT`` in a literal argv (or an argument list
    whose first item is ``-c``, as the guest agent's ``arg`` takes it)."""
    items = node.elts
    for index, item in enumerate(items[:-1]):
        if not (isinstance(item, ast.Constant) and item.value == "-c"):
            continue
        before = items[index - 1] if index else None
        if index == 0 or (isinstance(before, ast.Constant) and before.value in SHELLS):
            yield items[index + 1]


class Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, where: str) -> None:
        self.where = where
        self.constants = _module_constants(tree) | _imported_constants(tree)
        self.problems: list[str] = []
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self.script_params: dict[str, int] = {}  # helper name -> script argument index
        self.calls: list[ast.Call] = []

    def _problem(self, node: ast.AST, text: str) -> None:
        self.problems.append(f"{self.where}:{getattr(node, 'lineno', '?')}: {text}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        self.calls.append(node)
        name = _dotted(node.func)
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                self._problem(node, "shell= other than False")
        if name[-2:] in BANNED_CALLS:
            self._problem(node, f"{'.'.join(name)} runs a shell string")
        runner = name[:1] == ("subprocess",) and name[-1] in SUBPROCESS_RUNNERS
        stringy = ast.Constant | ast.JoinedStr | ast.BinOp
        if runner and node.args and isinstance(node.args[0], stringy):
            self._problem(node, "a subprocess call given a string, not an argv list")
        self.generic_visit(node)

    def visit_List(self, node: ast.List | ast.Tuple) -> None:
        for script in _shell_scripts(node):
            self._check_script(script)
        self.generic_visit(node)

    visit_Tuple = visit_List  # type: ignore[assignment]

    def _check_script(self, script: ast.expr) -> None:
        if _fixed_text(script):
            return
        if isinstance(script, ast.Name) and script.id in self.constants:
            return
        function = self.functions[-1] if self.functions else None
        if isinstance(script, ast.Name) and function is not None:
            params = [a.arg for a in function.args.posonlyargs + function.args.args]
            if script.id in params:
                offset = 1 if params and params[0] in {"self", "cls"} else 0
                self.script_params[function.name] = params.index(script.id) - offset
                return
        self._problem(script, f"sh -c with a script built at run time: {ast.unparse(script)}")

    def finish(self) -> None:
        """Every call of a helper that passes its script argument on gives fixed text."""
        for call in self.calls:
            name = _dotted(call.func)
            if not name or name[-1] not in self.script_params:
                continue
            index = self.script_params[name[-1]]
            if index < len(call.args):
                script = call.args[index]
                ok = _fixed_text(script) or (
                    isinstance(script, ast.Name) and script.id in self.constants
                )
                if not ok:
                    self._problem(
                        call,
                        f"{name[-1]}() given a script built at run time: {ast.unparse(script)}",
                    )


def problems_in(text: str, where: str) -> list[str]:
    tree = ast.parse(text)
    checker = Checker(tree, where)
    checker.visit(tree)
    checker.finish()
    return checker.problems


def test_vmshare_runs_no_shell_strings() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 50  # the walk really reads the package
    found = [p for f in files for p in problems_in(f.read_text(), str(f.relative_to(SOURCE)))]
    assert found == []


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['ls'], shell=True)",
        "import subprocess\nsubprocess.run(args, shell=flag)",
        "import os\nos.system('ls')",
        "import os\nos.popen('ls')",
        "import subprocess\nsubprocess.getoutput('ls')",
        "import subprocess\nsubprocess.getstatusoutput('ls')",
        "import subprocess\nsubprocess.run('ls -l')",
        "import subprocess\nsubprocess.run(f'ls {path}')",
        "def f(path):\n    run(['sh', '-c', f'ls {path}'])",
        "def f(path):\n    run(['bash', '-c', 'ls ' + path])",
        "def f(path):\n    run(['sh', '-c', 'ls {}'.format(path)])",
        "def f(path):\n    script = 'ls ' + path\n    run(['sh', '-c', script])",
        "X = 'ls %s'\ndef f(path):\n    run(['sh', '-c', X % path])",
        "agent({'path': 'sh', 'arg': ['-c', f'kill {pid}']})",
        "class G:\n    def _sh(self, script, *a):\n        run(['sh', '-c', script, *a])\n"
        "    def g(self, p):\n        self._sh(f'cat {p}')",
    ],
)
def test_the_walk_finds_each_kind_of_shell_string(code: str) -> None:
    assert problems_in(code, "example") != []


@pytest.mark.parametrize(
    "code",
    [
        "S = 'ls \"$1\"'\ndef f(path):\n    run(['sh', '-c', S, 'vmshare', path])",
        "def f(path):\n    run(['sh', '-c', 'ls \"$1\"', 'sh', path])",
        "S = 'a' + 'b'\nclass G:\n    def _sh(self, script, *a):\n"
        "        run(['sh', '-c', script, *a])"
        "\n    def g(self, p):\n        self._sh(S, p)",
        "run(['smbpasswd', '-c', conf, '-a', user])",
        "import subprocess\nsubprocess.run(['ls', path], shell=False)",
    ],
)
def test_fixed_scripts_with_positional_values_pass(code: str) -> None:
    assert problems_in(code, "example") == []
