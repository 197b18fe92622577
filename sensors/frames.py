"""The station consumer's parser: a fast path for the ``sensor_data`` messages it accepts.

``parse_frame`` returns what the consumer needs: a ``Reading`` for a sample, the message itself
for the other types. A ``sensor_data`` frame is first decoded by msgspec into the structs below,
which mirror the pydantic models of ``sensors.schemas`` (same fields, same bounds). msgspec skips
the fields we do not store without building them, where pydantic's ``validate_json`` builds the
whole document first (the 190 KB ESP32 message is mostly an undeclared 110 KB ``bins_matrix``):
``bench/ingest.py`` times both.

The fast path only ever accepts: whatever it does not take as it is goes through
``schemas.parse_message``, unchanged, so every refusal, its error frame and every warning are
pydantic's, word for word. It leaves to pydantic a message that pydantic refuses, and also some
it accepts with a conversion or a warning (numbers or booleans sent as strings, integral floats
as lot ids, descriptive fields to truncate, timestamps as numbers, a null ``raw`` section...), and
any frame whose text holds ``NaN``, ``Infinity`` or ``\\u0000`` (pydantic's path says where).
``tests/sensors/test_frames.py`` checks that both paths give the same ``Reading`` for accepted
messages and the same error for refused ones.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from sensors.schemas import (
    DESCRIPTIVE_MAX,
    SPECTRAL_CHANNELS,
    FieldWarning,
    Heartbeat,
    Hello,
    Ping,
    Reading,
    SensorData,
    _contains,
    device_id_check,
    parse_message,
)

_FLOAT_MAX = sys.float_info.max  # an upper bound refuses infinities (pydantic: allow_inf_nan)
Grade = Literal["A+", "A", "B", "C", "REJECT"]
Score = Annotated[float, Meta(ge=0, le=1)]
NonNegative = Annotated[float, Meta(ge=0, le=_FLOAT_MAX)]
Channel = Annotated[float, Meta(ge=0, le=65535)]


def _matrix(item: Any) -> Any:
    row = Annotated[list[item], Meta(min_length=8, max_length=8)]
    return Annotated[list[row], Meta(min_length=8, max_length=8)]


DistanceMatrix = _matrix(Annotated[float, Meta(ge=0, le=4000)])
PositiveMatrix = _matrix(NonNegative)
StatusMatrix = _matrix(Annotated[float, Meta(ge=0, le=255)])


class _Channels(Struct, frozen=True):
    F1_415nm: Channel
    F2_445nm: Channel
    F3_480nm: Channel
    F4_515nm: Channel
    F5_555nm: Channel
    F6_590nm: Channel
    F7_630nm: Channel
    F8_680nm: Channel
    Clear: Channel
    NIR: Channel


class _ToFMatrices(Struct, frozen=True):
    distance_matrix: DistanceMatrix
    reflectance_matrix: PositiveMatrix
    amplitude_matrix: PositiveMatrix
    ambient_matrix: PositiveMatrix | None = None
    status_matrix: StatusMatrix | None = None


class _ToFAnalysis(Struct, frozen=True):
    volume_mm3: NonNegative
    surface_uniformity: Score
    quality_score: Score
    grade: Grade


class _ToF(Struct, frozen=True):
    """Either form of the ``vl53l8ch`` section (``schemas._form``: nested when it has ``raw``
    or ``analysis``); UNSET tells a missing field from a null one."""

    raw: _ToFMatrices | None | UnsetType = UNSET
    analysis: _ToFAnalysis | None | UnsetType = UNSET
    distance_matrix: DistanceMatrix | UnsetType = UNSET
    reflectance_matrix: PositiveMatrix | UnsetType = UNSET
    amplitude_matrix: PositiveMatrix | UnsetType = UNSET
    ambient_matrix: PositiveMatrix | None = None
    status_matrix: StatusMatrix | None = None
    volume_mm3: NonNegative | UnsetType = UNSET
    surface_uniformity: Score | UnsetType = UNSET
    quality_score: Score | UnsetType = UNSET
    grade: Grade | UnsetType = UNSET


class _SpectralAnalysis(Struct, frozen=True):
    freshness_index: Score
    fat_quality_index: Score
    oxidation_index: Score
    quality_score: Score
    grade: Grade


class _SpectralRaw(Struct, frozen=True):
    channels: _Channels


class _Spectral(Struct, frozen=True):
    """Either form of the ``as7341`` section (as ``_ToF``)."""

    raw: _SpectralRaw | None | UnsetType = UNSET
    analysis: _SpectralAnalysis | None | UnsetType = UNSET
    channels: _Channels | UnsetType = UNSET
    freshness_index: Score | UnsetType = UNSET
    fat_quality_index: Score | UnsetType = UNSET
    oxidation_index: Score | UnsetType = UNSET
    quality_score: Score | UnsetType = UNSET
    grade: Grade | UnsetType = UNSET


class _FoieGrasMetrics(Struct, frozen=True):
    is_compliant: bool | None = None


class _Fusion(Struct, frozen=True):
    final_score: Score
    final_grade: Grade
    is_compliant: bool | None = None
    foie_gras_metrics: _FoieGrasMetrics | None = None


class _Meta(Struct, frozen=True):
    firmware_version: str = ""
    temperature_c: Annotated[float, Meta(ge=-40, le=125)] | None = None
    humidity_percent: Annotated[float, Meta(ge=0, le=100)] | None = None


class _SensorData(Struct, frozen=True):
    type: Literal["sensor_data"]
    device_id: str
    sample_id: str
    timestamp: str  # parsed by pydantic's own datetime rules (_AWARE)
    vl53l8ch: _ToF
    as7341: _Spectral
    fusion: _Fusion
    lot_id: Annotated[int, Meta(gt=0, le=2**63 - 1)] | None = None
    site_code: str | None = None
    meta: _Meta | None = None
    lot_abattage: str = ""
    eleveur: str = ""
    provenance: str = ""


_decoder = msgspec.json.Decoder(_SensorData)
_AWARE = TypeAdapter(AwareDatetime)
# schemas.SampleId and SensorData.site_code, as whole-text matches (pydantic's regex engine).
_SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_SITE_CODE = re.compile(r"[A-Z]{2,5}")


class _NotFast(Exception):
    """The fast path does not take this message as it is: pydantic decides."""


def parse_frame(
    text: str, *, max_bytes: int, warnings: list[FieldWarning] | None = None
) -> Reading | Hello | Ping | Heartbeat:
    """``schemas.parse_message`` for the consumer, a sample given as its ``Reading``: the same
    result, the same ``ProtocolError`` and the same ``warnings``."""
    try:
        return _fast_reading(text, max_bytes=max_bytes)
    except _NotFast:
        pass
    message = parse_message(text, max_bytes=max_bytes, warnings=warnings)
    if isinstance(message, SensorData):
        return Reading.from_message(message)
    return message


def _fast_reading(text: str, *, max_bytes: int) -> Reading:
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_bytes:
        raise _NotFast
    try:
        msg = _decoder.decode(text)
    except (msgspec.DecodeError, UnicodeEncodeError):
        raise _NotFast from None
    if _contains(text, "NaN") or _contains(text, "Infinity") or _contains(text, "\\u0000"):
        raise _NotFast
    try:
        device_id = device_id_check(msg.device_id)
        timestamp: datetime = _AWARE.validate_python(msg.timestamp)
    except (PydanticCustomError, ValidationError):
        raise _NotFast from None
    if (
        not _SAMPLE_ID.fullmatch(msg.sample_id)
        or (msg.site_code is not None and not _SITE_CODE.fullmatch(msg.site_code))
        or len(msg.lot_abattage) > DESCRIPTIVE_MAX
        or len(msg.eleveur) > DESCRIPTIVE_MAX
        or len(msg.provenance) > DESCRIPTIVE_MAX
        or (msg.meta is not None and len(msg.meta.firmware_version) > DESCRIPTIVE_MAX)
    ):
        raise _NotFast
    matrices, tof = _tof_parts(msg.vl53l8ch)
    channels, spectral = _spectral_parts(msg.as7341)
    fusion = msg.fusion
    meta = msg.meta or _Meta()
    return Reading(
        device_id=device_id,
        sample_id=msg.sample_id,
        time=timestamp,
        lot_id=msg.lot_id,
        site_code=msg.site_code,
        tof_volume_mm3=tof.volume_mm3,
        tof_surface_uniformity=tof.surface_uniformity,
        tof_quality_score=tof.quality_score,
        tof_grade=tof.grade,
        distance_matrix=matrices.distance_matrix,
        reflectance_matrix=matrices.reflectance_matrix,
        amplitude_matrix=matrices.amplitude_matrix,
        ambient_matrix=matrices.ambient_matrix,
        status_matrix=matrices.status_matrix,
        spectral_channels=[float(getattr(channels, name)) for name in SPECTRAL_CHANNELS],
        spectral_freshness_index=spectral.freshness_index,
        spectral_fat_quality_index=spectral.fat_quality_index,
        spectral_oxidation_index=spectral.oxidation_index,
        spectral_quality_score=spectral.quality_score,
        spectral_grade=spectral.grade,
        fusion_score=fusion.final_score,
        fusion_grade=fusion.final_grade,
        is_compliant=(
            fusion.is_compliant
            if fusion.is_compliant is not None
            else fusion.final_grade != "REJECT"
        ),
        fill_conformity=(
            fusion.foie_gras_metrics.is_compliant if fusion.foie_gras_metrics else None
        ),
        lot_abattage=msg.lot_abattage,
        eleveur=msg.eleveur,
        provenance=msg.provenance,
        firmware_version=meta.firmware_version,
        temperature_c=meta.temperature_c,
        humidity_percent=meta.humidity_percent,
    )


_TOF_FLAT = (
    "distance_matrix",
    "reflectance_matrix",
    "amplitude_matrix",
    "volume_mm3",
    "surface_uniformity",
    "quality_score",
    "grade",
)
_SPECTRAL_FLAT = (
    "channels",
    "freshness_index",
    "fat_quality_index",
    "oxidation_index",
    "quality_score",
    "grade",
)


def _tof_parts(section: _ToF) -> tuple:
    """(matrices, analysis) of either form; _NotFast where pydantic would refuse it."""
    if section.raw is not UNSET or section.analysis is not UNSET:
        if not isinstance(section.raw, _ToFMatrices) or not isinstance(
            section.analysis, _ToFAnalysis
        ):
            raise _NotFast
        return section.raw, section.analysis
    if any(getattr(section, name) is UNSET for name in _TOF_FLAT):
        raise _NotFast
    return section, section


def _spectral_parts(section: _Spectral) -> tuple:
    """(channels, analysis) of either form; _NotFast where pydantic would refuse it."""
    if section.raw is not UNSET or section.analysis is not UNSET:
        if not isinstance(section.raw, _SpectralRaw) or not isinstance(
            section.analysis, _SpectralAnalysis
        ):
            raise _NotFast
        return section.raw.channels, section.analysis
    if any(getattr(section, name) is UNSET for name in _SPECTRAL_FLAT):
        raise _NotFast
    return section.channels, section
