"""Reading the registries' YAML strictly: UTF-8 only, and no key defined twice.

``yaml.safe_load`` lets the last of two equal keys win silently (a run defined twice) and a byte that is not
UTF-8 ends in a ``UnicodeDecodeError`` traceback; here either is one line naming the file, the line and the
key (``runs/unet_isbi``), exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from segbench.errors import InputError

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping with the same key twice: the key, where it was first defined and where again."""

    def __init__(self, key: str, first: int, again: int, node: MappingNode) -> None:
        super().__init__(f"key {key!r} defined twice (lines {first} and {again})")
        self.key, self.first, self.again, self.node = key, first, again, node


class UniqueKeyLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that refuses a mapping with a duplicate key instead of keeping the last one."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(key_node.value, seen[key], line, node)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def decode_utf8(path: str | os.PathLike[str], data: bytes) -> str:
    """``data`` as UTF-8 text; a byte that is not UTF-8 is one line naming the file, line and byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        text = data[start : end if end >= 0 else len(data)].decode("utf-8", "replace").strip()
        raise InputError(
            f"{path}: line {line_no}: byte 0x{data[exc.start]:02x} is not UTF-8 (in {text[:60]!r}); "
            "save the file as UTF-8"
        ) from None


def key_path(
    root: Node, target: Node, trail: tuple[str, ...] = (), seen: set[int] | None = None
) -> str | None:
    """The ``a/b/c`` keys leading from ``root`` to ``target`` (None if it is not under ``root``)."""
    if root is target:
        return "/".join(trail) or "(top level)"
    seen = set() if seen is None else seen
    if id(root) in seen:  # an alias seen before (YAML anchors may even form a cycle)
        return None
    seen.add(id(root))
    children: list[tuple[str, Node]] = []
    if isinstance(root, MappingNode):
        children = [(str(getattr(k, "value", "?")), v) for k, v in root.value]
    elif isinstance(root, SequenceNode):
        children = [(str(i), v) for i, v in enumerate(root.value)]
    for name, child in children:
        found = key_path(child, target, (*trail, name), seen)
        if found is not None:
            return found
    return None


def load_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """Parse the YAML file ``path`` (a ``what``, e.g. "registry") strictly; see the module docstring.
    A syntax error is left to the caller (``yaml.YAMLError``); a missing file raises ``FileNotFoundError``."""
    text = decode_utf8(path, Path(path).read_bytes())
    loader = UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        try:
            return None if root is None else loader.construct_document(root)
        except DuplicateKeyError as exc:
            where = key_path(root, exc.node) if root is not None else None
            full = f"{where}/{exc.key}" if where and where != "(top level)" else exc.key
            raise InputError(
                f"{path}: line {exc.again}: {what} key {full!r} is defined twice (first at line "
                f"{exc.first}); keep one definition (YAML would silently use the last)"
            ) from None
    finally:
        loader.dispose()
