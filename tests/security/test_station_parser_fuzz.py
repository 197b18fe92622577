"""Property-based tests of the station message parser (sensors.schemas.parse_message).

Whatever a station (or anyone holding a token) sends, the parser either returns a message or
raises ProtocolError with a code, a detail and, for validation errors, the field and the rule.
An accepted message must be storable as it is: no NaN or infinity, no NUL, no lone surrogate
(PostgreSQL's text columns refuse them, and one refused row would fail its whole batch; the
stored payload, its text zstd-compressed, must stay loadable into jsonb: sensors/payload.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.examples import nested_example
from sensors.schemas import (
    Hello,
    ProtocolError,
    Reading,
    SensorData,
    parse_message,
)
from tests.support.stations import fixture_text
from tests.support.strategies import json_values, mutate, paths

FLAT = json.loads(fixture_text("sensor_data_flat.json"))
CODES = {"message_too_large", "invalid_json", "unknown_type", "validation_error"}
MAX_BYTES = 512 * 1024
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def nested_fixture() -> dict:
    return nested_example(FLAT, lot_id=12, site_code="LL")


NESTED = nested_fixture()
HELLO = json.loads(fixture_text("esp32_hello.json"))


FLAT_PATHS = paths(FLAT)
NESTED_PATHS = paths(NESTED)
HELLO_PATHS = paths(HELLO)


def dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def assert_storable(value: Any) -> None:
    """What PostgreSQL would store without refusing the row."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, str):
        assert "\x00" not in value
        value.encode()  # no lone surrogate
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)


def outcome(text: str) -> Any:
    """Parse; a ProtocolError is checked and returned, any other exception fails the test."""
    try:
        message = parse_message(text, max_bytes=MAX_BYTES)
    except ProtocolError as exc:
        assert exc.code in CODES
        assert isinstance(exc.detail, str) and exc.detail
        frame = json.loads(json.dumps(exc.frame()))
        assert frame["type"] == "error" and frame["code"] == exc.code
        if exc.code == "validation_error":
            assert exc.field and exc.rule
            assert exc.detail.startswith(f"{exc.field}: ")
        return exc
    if isinstance(message, SensorData):  # stored verbatim (zstd; valid jsonb input)
        assert_storable(json.loads(text))
    if isinstance(message, Hello):  # these fields are stored
        assert_storable([message.location, message.firmware_version, message.mac_address])
    if isinstance(message, SensorData):
        reading = Reading.from_message(message)
        assert reading.sample_id == message.sample_id
        assert all(math.isfinite(x) for row in reading.distance_matrix for x in row)
    return message


@FUZZ
@given(json_values)
def test_any_json_value_is_accepted_or_refused_with_a_protocol_error(value):
    outcome(json.dumps(value))


@FUZZ
@given(st.text(max_size=200))
def test_any_text_is_accepted_or_refused_with_a_protocol_error(text):
    result = outcome(text)
    assert isinstance(result, ProtocolError) or text.lstrip().startswith("{")


def mutations(document: dict, document_paths: list[tuple]):
    return st.tuples(
        st.sampled_from(document_paths),
        st.sampled_from(["replace", "delete"]),
        json_values,
    )


def check_mutation(document: dict, path: tuple, action: str, value: Any) -> None:
    mutated = mutate(document, path, action, value)
    result = outcome(json.dumps(mutated))
    if isinstance(result, ProtocolError) and result.code == "validation_error":
        # The error is about the part we broke, not somewhere else in the message.
        top = path[0]
        assert result.field.split(".")[0].split("[")[0] == top, (result.field, dotted(path))
        if result.rule == "finite_number":
            assert result.field == dotted(path) or result.field.startswith(dotted(path))
    if isinstance(result, SensorData) and action == "replace":
        assert_storable(value)


@FUZZ
@given(mutations(FLAT, FLAT_PATHS))
def test_mutations_of_the_flat_fixture_are_accepted_or_refused_naming_the_field(mutation):
    check_mutation(FLAT, *mutation)


@FUZZ
@given(mutations(NESTED, NESTED_PATHS))
def test_mutations_of_the_nested_form_are_accepted_or_refused_naming_the_field(mutation):
    check_mutation(NESTED, *mutation)


@FUZZ
@given(mutations(HELLO, HELLO_PATHS))
def test_mutations_of_the_hello_are_accepted_or_refused_naming_the_field(mutation):
    check_mutation(HELLO, *mutation)


@FUZZ
@given(st.sampled_from([FLAT, NESTED, HELLO]), st.integers(min_value=0, max_value=400))
def test_a_truncated_message_is_refused_as_invalid_json(document, cut):
    text = json.dumps(document)
    cut = min(cut, len(text) - 1)
    result = outcome(text[: len(text) - 1 - cut])
    assert isinstance(result, ProtocolError) and result.code == "invalid_json"


def test_the_unmutated_forms_are_accepted():
    assert isinstance(outcome(json.dumps(FLAT)), SensorData)
    assert isinstance(outcome(json.dumps(NESTED)), SensorData)
    assert isinstance(outcome(json.dumps(HELLO)), Hello)


def test_a_nul_character_in_a_hello_is_refused_before_it_reaches_the_database():
    for field in ("location", "firmware_version", "mac_address"):
        text = json.dumps({**HELLO, field: "Ligne\x00A"})
        error = outcome(text)
        assert isinstance(error, ProtocolError), field
        assert (error.code, error.rule) == ("validation_error", "no_nul")


def test_an_oversized_message_is_refused_before_it_is_parsed():
    text = json.dumps({**FLAT, "padding": "x" * MAX_BYTES})
    error = outcome(text)
    assert isinstance(error, ProtocolError)
    assert (error.code, error.rule, error.sample_id) == (
        "message_too_large",
        "max_bytes",
        "MG-261124-9595-018",
    )
    # Counted in UTF-8 bytes, not characters.
    accented = json.dumps({"type": "ping", "p": "é" * (MAX_BYTES // 2)}, ensure_ascii=False)
    assert len(accented) < MAX_BYTES < len(accented.encode())
    assert outcome(accented).code == "message_too_large"
