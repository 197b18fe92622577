"""An example of the nested SensorDataMessage form, built from a flat station message.

Documents the nested shape (``vl53l8ch.{raw,analysis}``, ``as7341.{raw,analysis}``, ``fusion``)
and serves tests and benches that need a compact, valid nested message.
"""

from __future__ import annotations

from typing import Any

TOF_MATRICES = ("distance_matrix", "reflectance_matrix", "amplitude_matrix")


def nested_example(
    flat: dict[str, Any], *, matrices: tuple[str, ...] = TOF_MATRICES, **changes: Any
) -> dict[str, Any]:
    """A valid nested message (grade A+, compliant) reusing the flat message's matrices and
    spectral channels; ``changes`` override top-level keys."""
    tof, spec = flat["vl53l8ch"], flat["as7341"]
    message: dict[str, Any] = {
        "type": "sensor_data",
        "device_id": "ESP32_LL_01",
        "sample_id": "ESP32_LL_01_N0001",
        "timestamp": "2026-11-24T08:00:00Z",
        "vl53l8ch": {
            "raw": {k: tof[k] for k in matrices},
            "analysis": {
                "volume_mm3": 98000.0,
                "surface_uniformity": 0.91,
                "quality_score": 0.88,
                "grade": "A+",
            },
        },
        "as7341": {
            "raw": {"channels": spec["channels"]},
            "analysis": {
                "freshness_index": 0.9,
                "fat_quality_index": 0.8,
                "oxidation_index": 0.1,
                "quality_score": 0.86,
                "grade": "A+",
            },
        },
        "fusion": {"final_score": 0.87, "final_grade": "A+", "is_compliant": True},
    }
    message.update(changes)
    return message
