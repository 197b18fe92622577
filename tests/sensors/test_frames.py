"""The consumer's parser (sensors.frames.parse_frame) against the pydantic schema it mirrors.

Whatever a station sends, ``parse_frame`` must answer as ``schemas.parse_message`` does: the same
``Reading`` for an accepted sample, the same warnings, the same error frame for a refused one. Its
msgspec fast path may leave a message to pydantic, never accept one differently: each test checks
that what the fast path accepts, pydantic accepts with an equal ``Reading`` and no warning.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.examples import nested_example
from sensors.frames import _fast_reading, _NotFast, parse_frame
from sensors.schemas import FieldWarning, ProtocolError, Reading, SensorData, parse_message
from tests.support.stations import fixture_text
from tests.support.strategies import json_values, mutate, paths

MAX_BYTES = 512 * 1024
FLAT = json.loads(fixture_text("sensor_data_flat.json"))
NESTED = nested_example(FLAT, lot_id=12, site_code="LL")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pydantic_outcome(text: str) -> tuple[Any, list[FieldWarning]]:
    warnings: list[FieldWarning] = []
    try:
        message = parse_message(text, max_bytes=MAX_BYTES, warnings=warnings)
    except ProtocolError as exc:
        return ("error", exc.frame()), warnings
    if isinstance(message, SensorData):
        return Reading.from_message(message), warnings
    return message, warnings


def frame_outcome(text: str) -> tuple[Any, list[FieldWarning]]:
    warnings: list[FieldWarning] = []
    try:
        return parse_frame(text, max_bytes=MAX_BYTES, warnings=warnings), warnings
    except ProtocolError as exc:
        return ("error", exc.frame()), warnings


def check(text: str) -> bool:
    """Both parsers agree on ``text``; True when the fast path took it."""
    expected = pydantic_outcome(text)
    assert frame_outcome(text) == expected
    try:
        fast = _fast_reading(text, max_bytes=MAX_BYTES)
    except _NotFast:
        return False
    assert fast == expected[0], "the fast path accepted what pydantic reads otherwise"
    assert expected[1] == [], "the fast path accepted what pydantic accepts with a warning"
    return True


def declared(document: dict) -> list[tuple]:
    skip = {"vl53l8ch_raw", "as7341_raw"}  # undeclared, and most of the 190 KB
    return [p for p in paths(document) if p[0] not in skip or len(p) == 1]


FLAT_PATHS = declared(FLAT)
NESTED_PATHS = declared(NESTED)

# Values that sit on the border of a rule, or that pydantic converts (strings, floats as ints).
border_values = st.sampled_from(
    [
        0,
        -0.0,
        1,
        1.0,
        4000,
        4000.0001,
        65535,
        65536,
        255.5,
        -1e-300,
        1e308,
        2**63 - 1,
        2**63,
        10**30,
        "1.5",
        "12",
        "true",
        True,
        False,
        None,
        [],
        {},
        "A+",
        "a+",
        "REJECT",
        "LL",
        "LL\n",
        "ll",
        "ESP32 Ligne B",
        " ESP32 ",
        "Poste Étoile",
        "x" * 255,
        "x" * 256,
        "S1\n",
        "S1 ",
        "2026-11-24T08:00:00Z",
        "2026-11-24T08:00:00.1234567Z",
        "2026-11-24 08:00:00+01:00",
        "2026-11-24T08:00:00",
        "2026-11-24",
        "1795481704",
        1795481704,
        "Ligne\x00A",
        "\u00e9\u2192",
        [[1.0] * 8] * 8,
        [[1.0] * 8] * 7,
        [[1] * 8] * 8,
        [[4001.0] * 8] * 8,
    ]
)


@FUZZ
@given(
    st.sampled_from([FLAT, NESTED]).flatmap(
        lambda doc: st.tuples(
            st.just(doc),
            st.sampled_from(FLAT_PATHS if doc is FLAT else NESTED_PATHS),
            st.sampled_from(["replace", "delete"]),
            border_values | json_values,
        )
    )
)
def test_a_changed_message_is_read_the_same_by_both_parsers(change):
    document, path, action, value = change
    check(json.dumps(mutate(document, path, action, value)))


@FUZZ
@given(json_values)
def test_any_json_value_gets_the_same_answer(value):
    check(json.dumps(value))


@FUZZ
@given(st.sampled_from([FLAT, NESTED]), st.integers(min_value=0, max_value=300))
def test_a_truncated_sample_gets_the_same_error(document, cut):
    text = json.dumps(document)
    assert not check(text[: len(text) - 1 - cut])


def test_the_station_messages_take_the_fast_path_unchanged():
    """The ESP32 fixture byte for byte, and the nested form, compact and indented."""
    assert check(fixture_text("sensor_data_flat.json"))
    assert check(json.dumps(NESTED))
    assert check(json.dumps(NESTED, indent=2, ensure_ascii=False))
    assert check(json.dumps({**FLAT, "device_id": "Poste Étoile", "lot_abattage": "LL\u2192"}))


@pytest.mark.parametrize(
    "text",
    [
        # The last of two equal keys wins, in both parsers.
        '{"type": "sensor_data", "sample_id": "A1", ' + json.dumps(NESTED)[1:],
        json.dumps(NESTED)[:-1] + ', "sample_id": "bad id"}',
        # Escaped keys and values, a surrogate pair, lone surrogates (refused anywhere).
        json.dumps(NESTED).replace('"sample_id"', '"sample\\u005fid"'),
        json.dumps({**NESTED, "note": "\U0001f600"}),
        json.dumps(NESTED)[:-1] + ', "note": "\\ud800"}',
        json.dumps(NESTED)[:-1] + ', "note": "\\udc00x"}',
        # Literals PostgreSQL's jsonb refuses, in a field we do not store.
        json.dumps(NESTED)[:-1] + ', "extra": NaN}',
        json.dumps(NESTED)[:-1] + ', "extra": -Infinity}',
        json.dumps(NESTED)[:-1] + ', "extra": 1e999}',
        json.dumps(NESTED)[:-1] + ', "extra": "\\u0000"}',
        json.dumps(NESTED)[:-1] + ', "extra": "NaN and Infinity"}',
        json.dumps({**NESTED, "vl53l8ch": {**NESTED["vl53l8ch"], "volume_mm3": "x"}}),
        json.dumps({**NESTED, "vl53l8ch": {**NESTED["vl53l8ch"], "raw": None}}),
        json.dumps({**NESTED, "as7341": {**NESTED["as7341"], "analysis": None}}),
        json.dumps(NESTED).replace('"volume_mm3": 98000.0', '"volume_mm3": 1e999'),
        json.dumps(NESTED).replace('"volume_mm3": 98000.0', '"volume_mm3": 98000'),
        json.dumps(NESTED).replace('"lot_id": 12', '"lot_id": 12.0'),
        json.dumps(NESTED).replace('"lot_id": 12', '"lot_id": 9223372036854775808'),
        json.dumps({**NESTED, "meta": None}),
        json.dumps({**NESTED, "meta": {"firmware_version": "x" * 300}}),
        json.dumps({**NESTED, "fusion": {**NESTED["fusion"], "foie_gras_metrics": {}}}),
        json.dumps({**NESTED, "fusion": {"final_score": 0.2, "final_grade": "REJECT"}}),
        json.dumps({**NESTED, "type": "esp32_hello"}),
        "\ufeff" + json.dumps(NESTED),
        " " + json.dumps(NESTED) + "\n",
        json.dumps(NESTED) + " x",
    ],
)
def test_edge_cases_get_the_same_answer(text):
    check(text)
