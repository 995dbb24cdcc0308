"""JSON Patch (RFC 6902) as OpenMetadata's server applies it to entities and lineage edges.

The server hands the patch to the JSON-P library one operation at a time, after two
adjustments of its own (2.0; ``JsonUtils.applyPatch``): operations on read-only generated
fields (any path ending in ``href``, ``changeDescription``, ``incrementalChangeDescription``)
are dropped, and a ``replace`` of a member that is absent but whose parent exists becomes an
``add``. A pointer that does not start with ``/`` is refused up front.

A patch the library cannot apply (missing member, index out of range, a failed ``test``) is
a 400 on 2.0 and an unhandled server error (500) on 1.13, which did not map the library's
exception yet.

Written by hand rather than with the ``jsonpatch`` package: the server's adjustments and
error answers wrap every step anyway, and the relay's runtime dependencies stay as they are
for a feature only the mock needs (the tests compare this module with ``jsonpatch``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ._errors import ApiError

_READ_ONLY_ROOTS = ("/changeDescription", "/incrementalChangeDescription")
_VALUE_OPS = frozenset({"add", "replace", "test"})
_FROM_OPS = frozenset({"move", "copy"})
_OPS = _VALUE_OPS | _FROM_OPS | {"remove"}


class PatchFailed(ApiError):
    """A patch the server refuses: 400 on 2.0, 500 on 1.13 for the library's own failures."""


def apply_patch(document: Any, patch: Any, *, server_v2: bool) -> Any:
    """The document with ``patch`` applied (the input is not modified)."""
    if not isinstance(patch, list):
        raise ApiError(400, "JSON Patch must be a JSON array of operations")
    result = copy.deepcopy(document)
    for operation in patch:
        result = _apply_one(result, _checked(operation, server_v2), server_v2)
    return result


def _library_error(message: str, server_v2: bool) -> PatchFailed:
    return PatchFailed(400 if server_v2 else 500, message)


def _checked(operation: Any, server_v2: bool) -> dict[str, Any]:
    if not isinstance(operation, dict):
        raise _library_error("A JSON Patch operation must be a JSON object", server_v2)
    op = operation.get("op")
    if op not in _OPS:
        raise _library_error(f"Illegal value for the op member of the JSON Patch: {op}", server_v2)
    for member in ("path", *(("from",) if op in _FROM_OPS else ())):
        if not isinstance(operation.get(member), str):
            raise _library_error(
                f"The JSON Patch operation '{op}' must have a string '{member}' member", server_v2
            )
    if op in _VALUE_OPS and "value" not in operation:
        raise _library_error(
            f"The JSON Patch operation '{op}' must have a 'value' member", server_v2
        )
    return operation


def _read_only(path: str) -> bool:
    return path.endswith("href") or any(
        path == root or path.startswith(root + "/") for root in _READ_ONLY_ROOTS
    )


def _apply_one(document: Any, operation: dict[str, Any], server_v2: bool) -> Any:
    op, path = operation["op"], operation["path"]
    source = operation.get("from")
    if server_v2:
        for member, pointer in (("path", path), ("from", source)):
            if pointer and not pointer.startswith("/"):
                raise ApiError(
                    400,
                    f"Invalid JSON Patch '{member}' value '{pointer}' - non-empty JSON Pointer "
                    "must begin with '/' (RFC 6901)",
                )
        if _read_only(path) or (source is not None and _read_only(source)):
            return document
        if op == "replace" and path not in ("", "/") and not _exists(document, path):
            parent = path[: path.rfind("/")]
            if parent == "" or _exists(document, parent):
                op = "add"
    tokens = _tokens(path, server_v2)
    if op == "add":
        return _add(document, tokens, copy.deepcopy(operation["value"]), server_v2)
    if op == "remove":
        return _remove(document, tokens, server_v2)[0]
    if op == "replace":
        _get(document, tokens, server_v2)
        value = copy.deepcopy(operation["value"])
        if not tokens:
            return value
        return _add(_remove(document, tokens, server_v2)[0], tokens, value, server_v2)
    if op == "test":
        if not _equal(_get(document, tokens, server_v2), operation["value"]):
            raise _library_error(
                f"The JSON Patch operation 'test' failed for path '{path}' and value "
                f"'{_compact(operation['value'])}'",
                server_v2,
            )
        return document
    from_tokens = _tokens(operation["from"], server_v2)
    if op == "copy":
        value = copy.deepcopy(_get(document, from_tokens, server_v2))
        return _add(document, tokens, value, server_v2)
    if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
        raise _library_error(
            f"The 'from' location '{operation['from']}' is a proper prefix of the 'path' "
            f"location '{path}'",
            server_v2,
        )
    document, value = _remove(document, from_tokens, server_v2)
    return _add(document, tokens, value, server_v2)


def _tokens(pointer: str, server_v2: bool) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _library_error("A non-empty JSON Pointer must begin with a '/'", server_v2)
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _exists(document: Any, pointer: str) -> bool:
    try:
        _get(document, _tokens(pointer, True), True)
    except ApiError:
        return False
    return True


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


_END = "-"  # the array position after the last element


def _index(container: list[Any], part: str, *, allow_end: bool, server_v2: bool) -> int:
    if allow_end and part == _END:
        return len(container)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise _library_error(f"Illegal value of the array index in the pointer: {part}", server_v2)
    index = int(part)
    if index > len(container) or (index == len(container) and not allow_end):
        raise _library_error(
            f"An array item index is out of range. Index: {index}, Size: {len(container)}",
            server_v2,
        )
    return index


def _get(document: Any, tokens: list[str], server_v2: bool) -> Any:
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise _library_error(
                    f"'{_compact(node)}' contains no value for name '{token}'", server_v2
                )
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False, server_v2=server_v2)]
        else:
            raise _library_error(
                f"The reference value in a JSON Pointer must be a JSON Object or a JSON Array, "
                f"was '{_compact(node)}'",
                server_v2,
            )
    return node


def _add(document: Any, tokens: list[str], value: Any, server_v2: bool) -> Any:
    if not tokens:
        return value
    parent = _get(document, tokens[:-1], server_v2)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True, server_v2=server_v2), value)
    else:
        raise _library_error(
            f"The reference value in a JSON Pointer must be a JSON Object or a JSON Array, "
            f"was '{_compact(parent)}'",
            server_v2,
        )
    return document


def _remove(document: Any, tokens: list[str], server_v2: bool) -> tuple[Any, Any]:
    """The document without the value at ``tokens``, and that value."""
    if not tokens:
        raise _library_error("The JSON Patch operation cannot remove the whole document", server_v2)
    parent = _get(document, tokens[:-1], server_v2)
    value = _get(parent, tokens[-1:], server_v2)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1], allow_end=False, server_v2=server_v2)]
    return document, value


def _equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value, but a boolean is never a number."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        pairs = zip(left, right, strict=False)
        return len(left) == len(right) and all(_equal(a, b) for a, b in pairs)
    return type(left) is type(right) and left == right
