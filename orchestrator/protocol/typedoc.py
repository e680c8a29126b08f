"""Describing msgspec types in Markdown: field tables, type names with bounds, docstrings
read from the source (Python keeps none for enum members and struct fields)."""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
import msgspec.inspect as mi


def structs_of(roots: Iterable[Any]) -> list[type[msgspec.Struct]]:
    """Every struct reachable from `roots`, each once, parents before the structs they hold."""
    found: list[type[msgspec.Struct]] = []

    def visit(info: mi.Type) -> None:
        if isinstance(info, mi.StructType):
            if info.cls in found:
                return
            found.append(info.cls)
            for field in info.fields:
                visit(field.type)
        for child in child_types(info):
            visit(child)

    for root in roots:
        visit(mi.type_info(root))
    return found


def child_types(info: mi.Type) -> Iterator[mi.Type]:
    """The types nested in `info` (union members, containers, optionals)."""
    if isinstance(info, mi.UnionType):
        yield from info.types
    elif isinstance(info, mi.ListType | mi.VarTupleType):
        yield info.item_type
    elif isinstance(info, mi.Metadata):
        yield info.type


def type_text(info: mi.Type) -> str:  # noqa: PLR0911 - one return per kind of type
    """A short human name of a type, with its bounds."""
    if isinstance(info, mi.Metadata):
        return type_text(info.type)
    if isinstance(info, mi.StrType):
        return "string" + str_bounds(info)
    if isinstance(info, mi.IntType):
        return "integer" + int_bounds(info)
    if isinstance(info, mi.BoolType):
        return "boolean"
    if isinstance(info, mi.NoneType):
        return "null"
    if isinstance(info, mi.ListType | mi.VarTupleType):
        return f"array of {type_text(info.item_type)}"
    if isinstance(info, mi.EnumType | mi.StructType):
        return anchor_link(info.cls.__name__)
    if isinstance(info, mi.UnionType):
        return " or ".join(type_text(t) for t in info.types)
    raise TypeError(f"describe {info!r} in orchestrator/protocol/document.py")


def str_bounds(info: mi.StrType) -> str:
    """The length bounds and pattern of a string type, as text."""
    parts = []
    if info.min_length is not None or info.max_length is not None:
        parts.append(f"{info.min_length or 0}..{info.max_length or ''} characters")
    if info.pattern is not None:
        parts.append(f"matching `{info.pattern}`")
    return f" ({', '.join(parts)})" if parts else ""


def int_bounds(info: mi.IntType) -> str:
    """The bounds of an integer type, as text."""
    if info.ge is None and info.le is None:
        return ""
    return f" ({'' if info.ge is None else info.ge}..{'' if info.le is None else info.le})"


def optional_text(field: mi.Field) -> str:
    """Whether a field may be left out, and its default."""
    if field.default is None or field.default is msgspec.NODEFAULT:
        return "no"
    return f"no (default `{msgspec.json.encode(field.default).decode()}`)"


def attribute_docs(cls: type) -> dict[str, str]:
    """The string literal after each field or member of `cls`, by attribute name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        target = (
            statement.target
            if isinstance(statement, ast.AnnAssign)
            else statement.targets[0]
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1
            else None
        )
        if (
            isinstance(target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[target.id] = inspect.cleandoc(following.value.value)
    return docs


def docstring(thing: object) -> str:
    """A docstring as one paragraph (indentation differs between Python versions)."""
    return " ".join(inspect.cleandoc(getattr(thing, "__doc__", None) or "").split())


def clean_descriptions(node: Any) -> Any:
    """Docstrings in a schema, dedented the same way on every Python version."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [clean_descriptions(item) for item in node]
    return node


def json_block(message: msgspec.Struct) -> list[str]:
    # A round trip through the decoder proves the example obeys the contract it illustrates.
    """A fenced JSON example of `message` (checked against its own decoder)."""
    encoded = msgspec.json.encode(message)
    msgspec.json.decode(encoded, type=type(message))
    return ["```json", msgspec.json.format(encoded, indent=2).decode(), "```"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def table_cell(text: str) -> str:
    """Text safe inside one table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def inline_code(text: str) -> str:
    """Text as inline code."""
    return f"`{text}`"


def anchor_link(name: str) -> str:
    """A link to the section named `name`."""
    return f"[{name}](#{name.lower()})"


def service_label(service_type: str) -> str:
    """The service type as people write it (`_delicasa._tcp`)."""
    return service_type.removesuffix(".local.")
