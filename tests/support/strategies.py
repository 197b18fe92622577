"""Hypothesis strategies shared by the hostile-input tests."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# Any JSON value, NaN and infinities included (Python's json writes them as NaN/Infinity, as a
# sloppy station would), strings with NUL and lone surrogates included.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "A+", "REJECT", "2026-11-24T08:00:00Z", "\x00", "\ud800", "NaN"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=9) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


def mutate(document: dict, path: tuple, action: str, value: Any) -> dict:
    """``document`` with the value at ``path`` replaced by ``value`` (or deleted, ``action``
    "delete"), copying only the containers along the path (the fixture is 140 KB)."""
    document = copy.copy(document)
    parent = document
    for part in path[:-1]:
        parent[part] = copy.copy(parent[part])
        parent = parent[part]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) into a JSON document, the document itself excluded."""
    found: list[tuple] = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, item in items:
        found.append((*prefix, key))
        found.extend(paths(item, (*prefix, key)))
    return found
