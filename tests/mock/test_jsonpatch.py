"""The mock's JSON Patch agrees with the ``jsonpatch`` package on RFC 6902's own examples.

The 1.13 mode is plain RFC 6902; 2.0 adds the server's adjustments, tested through the API.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from relay.testing.mock_openmetadata._errors import ApiError
from relay.testing.mock_openmetadata._jsonpatch import apply_patch

# (document, patch) pairs from RFC 6902 appendix A, plus escapes and nested arrays.
CASES: list[tuple[Any, list[dict[str, Any]]]] = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
    ),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}]),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
    ({"a/b": {"c~d": 1}}, [{"op": "copy", "from": "/a~1b/c~0d", "path": "/e"}]),
    ({"foo": [1, 2]}, [{"op": "add", "path": "/foo/3", "value": 3}]),
    ({"foo": [1, 2]}, [{"op": "remove", "path": "/foo/01"}]),
    ({"foo": True}, [{"op": "test", "path": "/foo", "value": 1}]),
    ({"foo": 1}, [{"op": "test", "path": "/foo", "value": 1.0}]),
    ({"foo": {"bar": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/bar/baz"}]),
    ({"foo": "bar"}, [{"op": "replace", "path": "", "value": {"baz": "qux"}}]),
    ({"foo": "bar"}, [{"op": "replace", "path": "/missing", "value": 1}]),
]


def _reference(document: Any, patch: list[dict[str, Any]]) -> Any:
    try:
        return jsonpatch.apply_patch(document, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        return "refused"


def _mock(document: Any, patch: list[dict[str, Any]]) -> Any:
    try:
        return apply_patch(document, patch, server_v2=False)
    except ApiError as exc:
        assert exc.status == 500  # 1.13: the library's exception went unmapped
        return "refused"


@pytest.mark.parametrize(("document", "patch"), CASES)
def test_agrees_with_the_jsonpatch_package(document: Any, patch: list[dict[str, Any]]) -> None:
    assert _mock(document, patch) == _reference(document, patch)


def test_the_input_document_is_left_alone() -> None:
    document = {"foo": ["bar"]}
    assert apply_patch(document, [{"op": "add", "path": "/foo/-", "value": 1}], server_v2=True) == {
        "foo": ["bar", 1]
    }
    assert document == {"foo": ["bar"]}
