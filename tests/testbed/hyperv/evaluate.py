"""The small PowerShell subset vmshare's host scripts use, evaluated over tree-sitter's tree.

Anything outside the subset (an expandable string, an unknown node, an undefined variable, a
cmdlet or parameter not on the allow-list) raises ``Unsupported``: the stand-in never guesses,
so a script that would do something else on Windows fails the test instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tree_sitter
import tree_sitter_powershell

from tests.testbed.hyperv.cmdlets import COMMON

QUOTES = "'\u2018\u2019\u201a\u201b"
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


class Unsupported(AssertionError):
    """The script leaves the subset the stand-in knows: a test failure, never an answer."""


class PsThrow(Exception):
    """A terminating error inside the script (throw, a failing cmdlet)."""


class PsExit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def parse(text: str) -> tree_sitter.Node:
    root = PARSER.parse(text.encode("utf-8")).root_node
    if root.has_error:
        raise Unsupported(f"tree-sitter-powershell cannot parse the script:\n{text}")
    return root


def decode_literal(raw: str) -> str:
    """A verbatim literal's value, by PowerShell's rule: any of the five quotes ends it unless
    doubled (the literal tree-sitter found is taken as a whole)."""
    if not raw or raw[0] not in QUOTES or raw[-1] not in QUOTES:
        raise Unsupported(f"not a single-quoted literal: {raw!r}")
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        if body[i] in QUOTES:
            if i + 1 >= len(body) or body[i + 1] not in QUOTES:
                raise Unsupported(f"a lone quote inside a literal: {raw!r}")
            out.append(body[i])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


class PsArray(list[Any]):
    """What @( ) makes: stays an array when assigned, even with one element."""


class Obj(dict[str, Any]):
    """A PowerShell object: properties by case-insensitive name."""

    def prop(self, name: str) -> Any:
        for key, value in self.items():
            if key.lower() == name.lower():
                return value
        return None


def prop(value: Any, name: str) -> Any:
    if isinstance(value, list) and name == "Count":
        return len(value)
    if isinstance(value, list):  # member enumeration
        found = [prop(v, name) for v in value]
        return [f for f in flat(found) if f is not None]
    if isinstance(value, Obj):
        return value.prop(name)
    if isinstance(value, dict):
        return value.get(name)
    if name == "Count":
        return 0 if value is None else 1
    if value is None:
        return None
    attribute = getattr(value, name, None)
    if attribute is None:
        raise Unsupported(f"no property {name} on {type(value).__name__}")
    return attribute


def flat(values: Any) -> list[Any]:
    if values is None:
        return []
    if not isinstance(values, list):
        return [values]
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def scalar(value: Any) -> Any:
    """A pipeline's output used as a value: one item is that item, none is $null."""
    if isinstance(value, list) and not isinstance(value, PsArray):
        if len(value) == 1:
            return value[0]
        if not value:
            return None
    return value


def truthy(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 1 or (len(value) == 1 and truthy(value[0]))
    return bool(value)


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, str) and b is not None and not isinstance(b, (bool, int)):
        return a.lower() == str(b).lower()
    return bool(a == b)


Cmdlet = Callable[[dict[str, Any], list[Any], list[Any] | None], Any]


class Evaluator:
    def __init__(
        self,
        cmdlets: dict[str, Cmdlet],
        allowed: dict[str, frozenset[str]],
        types: dict[str, Callable[[list[Any]], Any]],
        stdin: str = "",
    ) -> None:
        self.cmdlets, self.allowed, self.types = cmdlets, allowed, types
        self.vars: dict[str, Any] = {"true": True, "false": False, "null": None}
        self.stdin_lines = stdin.splitlines()
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    # ------------------------------------------------------------- statements

    def run(self, text: str) -> tuple[int, str, str]:
        root = parse(text)
        try:
            for value in flat(self.block(root)):
                self.stdout.append(value if isinstance(value, str) else repr(value))
            code = 0
        except PsExit as exc:
            code = exc.code
        except PsThrow as exc:
            self.stderr.append(str(exc))
            code = 1
        return code, "\n".join(self.stdout) + ("\n" if self.stdout else ""), "\n".join(self.stderr)

    def block(self, node: tree_sitter.Node) -> list[Any]:
        out: list[Any] = []
        for child in node.named_children:
            if child.type == "comment":
                raise Unsupported("comments are not part of vmshare's scripts")
            out.extend(flat(self.statement(child)))
        return out

    def statement(self, node: tree_sitter.Node) -> Any:
        kind = node.type
        if kind in ("statement_list", "statement_block", "program"):
            return self.block(node)
        if kind == "try_statement":
            body = node.named_children[0]
            catch = [c for c in node.named_children if c.type == "catch_clauses"]
            try:
                return self.block(body)
            except PsThrow as exc:
                if not catch:
                    raise
                self.vars["_"] = Obj(Exception=Obj(Message=str(exc)))
                clause = catch[0].named_children[0]
                blocks = [c for c in clause.named_children if c.type == "statement_block"]
                return self.block(blocks[0])
        if kind == "if_statement":
            return self.if_statement(node)
        if kind == "flow_control_statement":
            word = node.children[0].type
            value = self.expr(node.named_children[0]) if node.named_children else None
            if word == "throw":
                raise PsThrow(str(value))
            if word == "exit":
                raise PsExit(int(value or 0))
            raise Unsupported(f"flow control {word}")
        return self.expr(node)

    def if_statement(self, node: tree_sitter.Node) -> Any:
        named = node.named_children
        if truthy(self.expr(named[0])):
            return self.block(named[1])
        for clause in named[2:]:
            if clause.type == "elseif_clauses":
                for elseif in clause.named_children:
                    cond, body = elseif.named_children[0], elseif.named_children[1]
                    if truthy(self.expr(cond)):
                        return self.block(body)
            elif clause.type == "else_clause":
                return self.block(clause.named_children[0])
        return []

    # ------------------------------------------------------------ expressions

    def expr(self, node: tree_sitter.Node) -> Any:
        kind = node.type
        tokens = [c.type for c in node.children if not c.is_named]
        named = node.named_children
        if kind == "pipeline" and named and named[0].type == "assignment_expression":
            return self.expr(named[0])
        if kind == "assignment_expression":
            target = self.collapse(named[0])
            if target.type != "variable":
                raise Unsupported(f"assignment to {target.type}")
            value = self.expr(named[-1])
            self.vars[target.text.decode()[1:].lower()] = scalar(value)
            return []
        if kind == "pipeline_chain" or (kind == "pipeline" and "|" in tokens):
            return self.pipeline([c for c in named])
        if kind == "command":
            return self.pipeline([node])
        if kind == "string_literal":
            return self.literal(node)
        if len(named) == 1 and not tokens:
            return self.expr(named[0])
        if kind == "decimal_integer_literal":
            return int(node.text)
        if kind == "variable":
            name = node.text.decode()[1:].lower()
            if name not in self.vars:
                raise Unsupported(f"undefined variable ${name}")
            return self.vars[name]
        if kind == "parenthesized_expression":
            return scalar(self.expr(named[0]))
        if kind == "sub_expression":
            raise Unsupported("$( ) is not part of vmshare's scripts")
        if kind == "array_expression":
            return PsArray(flat(self.block(named[0])) if named else [])
        if kind == "array_literal_expression":
            return [self.expr(c) for c in named]
        if kind == "hash_literal_expression":
            return self.expr(named[0]) if named else Obj()
        if kind == "hash_literal_body":
            out = Obj()
            for entry in named:
                key, value = entry.named_children[0], entry.named_children[-1]
                out[key.text.decode()] = scalar(self.expr(value))
            return out
        if (
            kind in ("unary_expression", "expression_with_unary_operator")
            and tokens
            and tokens[0] in ("-not", "!")
        ):
            return not truthy(self.expr(named[-1]))
        if kind == "logical_expression":
            op = tokens[0].lower()
            left = truthy(self.expr(named[0]))
            if op == "-and":
                return left and truthy(self.expr(named[1]))
            if op == "-or":
                return left or truthy(self.expr(named[1]))
            raise Unsupported(op)
        if kind == "comparison_expression":
            op = named[1].text.decode().lower()
            left, right = self.expr(named[0]), self.expr(named[2])
            if op == "-eq":
                return equal(left, right)
            if op == "-ne":
                return not equal(left, right)
            if op == "-contains":
                return any(equal(v, right) for v in flat(left))
            raise Unsupported(f"operator {op}")
        if kind == "additive_expression" and tokens == ["+"]:
            left, right = self.expr(named[0]), self.expr(named[1])
            if isinstance(left, str):
                return left + str(right)
            raise Unsupported("+ on anything but strings")
        if kind == "member_access":
            return self.member(node)
        if kind == "invokation_expression":
            return self.invoke(node)
        if kind == "cast_expression":
            type_name = named[0].text.decode().strip("[]")
            return self.new(type_name, [self.expr(named[1])])
        if kind == "type_literal":
            return node.text.decode().strip("[]")  # a type passed as a value (.Translate)
        if kind == "script_block_expression":
            return node  # handed to the cmdlet (Invoke-Command), never run here
        raise Unsupported(f"node {kind}: {node.text.decode()[:80]!r}")

    def collapse(self, node: tree_sitter.Node) -> tree_sitter.Node:
        while node.named_child_count == 1 and all(c.is_named for c in node.children):
            node = node.named_children[0]
        return node

    def literal(self, node: tree_sitter.Node) -> str:
        inner = node.named_children
        if len(inner) != 1 or inner[0].type != "verbatim_string_characters":
            raise Unsupported(f"only single-quoted literals: {node.text.decode()!r}")
        return decode_literal(inner[0].text.decode("utf-8"))

    def new(self, type_name: str, args: list[Any]) -> Any:
        make = self.types.get(type_name.lower())
        if make is None:
            raise Unsupported(f"type {type_name}")
        return make(args)

    def member(self, node: tree_sitter.Node) -> Any:
        named = node.named_children
        if "::" in [c.type for c in node.children]:
            type_name = named[0].text.decode().strip("[]")
            return self.new(f"{type_name}::{named[1].text.decode()}", [])
        return prop(self.expr(named[0]), named[1].text.decode())

    def invoke(self, node: tree_sitter.Node) -> Any:
        named = node.named_children
        target = self.expr(named[0])
        method = named[1].text.decode()
        args: list[Any] = []
        for part in named[2:]:
            if part.type == "argument_list":
                inner = part.named_children
                args += [
                    self.expr(a)
                    for a in (
                        inner[0].named_children
                        if inner and inner[0].type == "argument_expression_list"
                        else inner
                    )
                ]
            else:
                args.append(self.expr(part))
        if isinstance(target, str):
            if method == "ToString":
                return target
            if method == "TrimEnd":
                return target.rstrip(args[0]) if args else target.rstrip()
            raise Unsupported(f"string method {method}")
        call = getattr(target, method, None)
        if call is None:
            raise Unsupported(f"method {method} on {type(target).__name__}")
        return call(*args)

    # ---------------------------------------------------------------- commands

    def pipeline(self, stages: list[tree_sitter.Node]) -> Any:
        if len(stages) == 1 and stages[0].type != "command":
            return self.expr(stages[0])  # an expression, not a pipeline: its value as it is
        data: list[Any] | None = None
        for stage in stages:
            if stage.type == "command":
                data = flat(self.command(stage, data))
            else:
                if data is not None:
                    raise Unsupported("an expression after a pipe")
                data = flat(self.expr(stage))
        return data or []

    def command(self, node: tree_sitter.Node, data: list[Any] | None) -> Any:
        name = node.child_by_field_name("command_name") or node.named_children[0]
        cmdlet = name.text.decode()
        if cmdlet not in self.allowed:
            raise Unsupported(f"cmdlet {cmdlet} is not on the stand-in's allow-list")
        params, positional = self.arguments(cmdlet, node)
        return self.cmdlets[cmdlet](params, positional, data)

    def arguments(self, cmdlet: str, node: tree_sitter.Node) -> tuple[dict[str, Any], list[Any]]:
        elements = [c for c in node.named_children if c.type == "command_elements"]
        params: dict[str, Any] = {}
        positional: list[Any] = []
        pending: str | None = None
        for element in elements[0].children if elements else []:
            if element.type == "command_argument_sep":
                continue
            if element.type == "command_parameter":
                if pending is not None:
                    params[pending] = True
                pending = element.text.decode()[1:]
                known = {p.lower(): p for p in self.allowed[cmdlet] | COMMON}
                if pending.lower() not in known:
                    raise Unsupported(f"{cmdlet} has no parameter -{pending}")
                pending = known[pending.lower()]
                continue
            value = self.expr(element)
            if pending is None:
                positional.append(value)
            else:
                params[pending] = value
                pending = None
        if pending is not None:
            params[pending] = True
        return params, positional
