"""Our own SQAL station simulator (``manage.py simulate_sqal``).

Each simulated station measures at a steady rate whether it is connected or not, keeps every
sample until the server acknowledges it, and on (re)connection resends what was not acknowledged:
a server restart loses nothing, and the server's duplicate detection keeps each sample once.
Connections are retried with exponential backoff and jitter. Messages are realistic in size and
content: the flat form the ESP32 simulator sends (8×8×128 ToF histogram included, ~190 KB) or the
compact nested ``SensorDataMessage`` form.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sensors.rules import grade_for_score
from sensors.schemas import SPECTRAL_CHANNELS

logger = logging.getLogger(__name__)

FORMATS = ("flat", "nested", "mixed")


@dataclass
class StationStats:
    measured: int = 0
    sent: int = 0
    resent: int = 0
    saved: int = 0
    duplicate: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    refused: int = 0

    @property
    def acked(self) -> int:
        return self.saved + self.duplicate


@dataclass
class SimulatorConfig:
    url: str
    device_ids: list[str]
    rate: float = 1.0  # samples per second per station
    duration: float = 0.0  # seconds of measuring; 0 = until stopped
    reject_ratio: float = 0.1
    form: str = "mixed"
    tokens: dict[str, str] = field(default_factory=dict)
    lot_codes: dict[str, str] = field(default_factory=dict)
    drain_timeout: float = 30.0  # after the last measure, how long to wait for acks
    seed: int | None = None


def _site_of(device_id: str) -> str:
    parts = device_id.split("_")
    return parts[1] if len(parts) >= 3 and parts[1].isalpha() and parts[1].isupper() else "LL"


class MessageFactory:
    """Plausible measures of one foie gras in its tray, in either form."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _tof(self, quality: float) -> dict:
        rng = self.rng
        height = 40 + 40 * quality
        distance, reflectance, amplitude, ambient, status = [], [], [], [], []
        for y in range(8):
            rows = ([], [], [], [], [])
            for x in range(8):
                # An ellipsoid lobe centred in the tray, seen from 100 mm above.
                r = math.hypot((x - 3.5) / 3.6, (y - 3.5) / 2.6)
                h = max(0.0, height * math.sqrt(max(0.0, 1 - r * r))) + rng.gauss(0, 2)
                rows[0].append(round(max(0.0, 100.0 - h), 2))
                rows[1].append(round(rng.uniform(55, 80), 2))
                rows[2].append(round(max(0.0, h * 1.5 + rng.gauss(0, 4)), 2))
                rows[3].append(round(rng.uniform(85, 120), 2))
                rows[4].append(5)
            for target, row in zip(
                (distance, reflectance, amplitude, ambient, status), rows, strict=True
            ):
                target.append(row)
        occupied = sum(1 for row in distance for d in row if d < 95)
        return {
            "distance_matrix": distance,
            "reflectance_matrix": reflectance,
            "amplitude_matrix": amplitude,
            "ambient_matrix": ambient,
            "status_matrix": status,
            "volume_mm3": round(occupied * 37.5 * 22.5 * height * 0.6, 1),
            "surface_uniformity": round(min(1.0, max(0.0, 0.55 + 0.4 * quality)), 3),
        }

    def _scores(self, reject: bool) -> dict:
        rng = self.rng
        fusion = rng.uniform(0.2, 0.44) if reject else min(0.99, rng.betavariate(6, 2))
        fusion = max(fusion, 0.45) if not reject else fusion
        tof = min(1.0, max(0.0, fusion + rng.gauss(0, 0.05)))
        spectral = min(1.0, max(0.0, fusion + rng.gauss(0, 0.05)))
        return {
            "fusion": round(fusion, 4),
            "tof": round(tof, 4),
            "spectral": round(spectral, 4),
            "freshness": round(min(1.0, max(0.0, fusion + rng.gauss(0.05, 0.05))), 4),
            "fat": round(min(1.0, max(0.0, fusion + rng.gauss(0, 0.05))), 4),
            "oxidation": round(min(1.0, max(0.0, 1 - fusion + rng.gauss(-0.3, 0.05))), 4),
        }

    def _channels(self, freshness: float) -> dict[str, int]:
        base = [1300, 2100, 1950, 8150, 3650, 2350, 3650, 2360, 5000, 800]
        return {
            name: int(max(0, b * (0.8 + 0.4 * freshness) + self.rng.gauss(0, b * 0.03)))
            for name, b in zip(SPECTRAL_CHANNELS, base, strict=True)
        }

    def flat(self, *, device_id: str, sample_id: str, lot_code: str, reject: bool) -> dict:
        """The ESP32 simulator's form, histogram included (about 190 KB once serialised)."""
        s = self._scores(reject)
        tof = self._tof(s["tof"])
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        bins = [
            [[round(self.rng.uniform(0, 8), 6) for _ in range(128)] for _ in range(8)]
            for _ in range(8)
        ]
        return {
            "type": "sensor_data",
            "timestamp": now,
            "sample_id": sample_id,
            "device_id": device_id,
            "location": "Ligne A",
            "vl53l8ch": {
                **tof,
                "quality_score": s["tof"],
                "grade": grade_for_score(s["tof"]),
            },
            "as7341": {
                "channels": self._channels(s["freshness"]),
                "freshness_index": s["freshness"],
                "fat_quality_index": s["fat"],
                "oxidation_index": s["oxidation"],
                "quality_score": s["spectral"],
                "grade": grade_for_score(s["spectral"]),
                "integration_time": 100,
                "gain": 8,
            },
            "fusion": {
                "sample_id": sample_id,
                "final_score": s["fusion"],
                "final_grade": grade_for_score(s["fusion"]),
                "tof_score": s["tof"],
                "spectral_score": s["spectral"],
                "tof_contribution": 0.6,
                "spectral_contribution": 0.4,
                "foie_gras_metrics": {"is_compliant": not reject},
            },
            "meta": {
                "device_id": device_id,
                "firmware_version": "1.0.0",
                "temperature_c": round(self.rng.uniform(3, 6), 2),
                "humidity_percent": round(self.rng.uniform(40, 60), 1),
                "config_profile": "foiegras_standard_barquette",
            },
            "vl53l8ch_raw": {"bins_matrix": bins, "meta": {"n_bins": 128, "resolution": 8}},
            "lot_abattage": lot_code,
            "eleveur": "Ferme Martin",
            "provenance": "Périgord, France",
        }

    def nested(self, *, device_id: str, sample_id: str, lot_code: str, reject: bool) -> dict:
        """The compact ``SensorDataMessage`` form (a few KB)."""
        s = self._scores(reject)
        tof = self._tof(s["tof"])
        grade = grade_for_score(s["fusion"])
        return {
            "type": "sensor_data",
            "device_id": device_id,
            "sample_id": sample_id,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "site_code": _site_of(device_id),
            "vl53l8ch": {
                "raw": {k: tof[k] for k in tof if k.endswith("_matrix")},
                "analysis": {
                    "volume_mm3": tof["volume_mm3"],
                    "surface_uniformity": tof["surface_uniformity"],
                    "quality_score": s["tof"],
                    "grade": grade_for_score(s["tof"]),
                },
            },
            "as7341": {
                "raw": {"channels": self._channels(s["freshness"])},
                "analysis": {
                    "freshness_index": s["freshness"],
                    "fat_quality_index": s["fat"],
                    "oxidation_index": s["oxidation"],
                    "quality_score": s["spectral"],
                    "grade": grade_for_score(s["spectral"]),
                },
            },
            "fusion": {
                "final_score": s["fusion"],
                "final_grade": grade,
                "is_compliant": grade != "REJECT",
            },
            "meta": {"firmware_version": "1.0.0", "temperature_c": 4.2, "humidity_percent": 50},
            "lot_abattage": lot_code,
        }


class Station:
    """One simulated station: measures, sends, waits for acks, reconnects, resends."""

    def __init__(self, device_id: str, config: SimulatorConfig, rng: random.Random) -> None:
        self.device_id = device_id
        self.config = config
        self.rng = rng
        self.factory = MessageFactory(rng)
        self.stats = StationStats()
        self.unacked: OrderedDict[str, str] = OrderedDict()
        self.unsent: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.measuring = True
        self.run_id = format(int(time.time() * 1000) % 36**7, "x")
        self.seq = 0
        self.lot_code = config.lot_codes.get(device_id) or (
            f"LOT-{datetime.now(UTC):%Y%m%d}-{_site_of(device_id)}"
        )

    def measure(self) -> None:
        self.seq += 1
        self.stats.measured += 1
        sample_id = f"{self.device_id}_{self.run_id}_{self.seq:05d}"
        form = self.config.form
        if form == "mixed":
            form = "flat" if self.seq % 2 else "nested"
        reject = self.rng.random() < self.config.reject_ratio
        build = self.factory.flat if form == "flat" else self.factory.nested
        message = build(
            device_id=self.device_id, sample_id=sample_id, lot_code=self.lot_code, reject=reject
        )
        self.unacked[sample_id] = json.dumps(message)
        self.unsent.append(sample_id)
        self.wakeup.set()

    async def produce(self) -> None:
        interval = 1.0 / self.config.rate if self.config.rate > 0 else 1.0
        started = time.monotonic()
        next_at = started
        while self.config.duration <= 0 or time.monotonic() - started < self.config.duration:
            self.measure()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        self.measuring = False
        self.wakeup.set()

    @property
    def done(self) -> bool:
        return not self.measuring and not self.unacked

    async def run(self) -> StationStats:
        producer = asyncio.create_task(self.produce())
        backoff = 0.5
        drain_deadline: float | None = None
        try:
            while not self.done:
                if not self.measuring:
                    drain_deadline = drain_deadline or time.monotonic() + self.config.drain_timeout
                    if time.monotonic() > drain_deadline:
                        break
                try:
                    await self.session(drain_deadline)
                    backoff = 0.5
                except Exception as exc:  # any failure: back off, reconnect, resend
                    if self.done:
                        break
                    delay = backoff * (0.5 + self.rng.random())
                    logger.warning(
                        "%s: %s; reconnecting in %.1f s", self.device_id, exc or type(exc), delay
                    )
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, 30.0)
        finally:
            producer.cancel()
        return self.stats

    async def session(self, drain_deadline: float | None) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        token = self.config.tokens.get(self.device_id)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ws = await connect(
                self.config.url, additional_headers=headers, max_size=None, open_timeout=10
            )
        except InvalidStatus:
            self.stats.refused += 1
            raise
        async with ws:
            greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if greeting.get("type") != "connection_established":
                raise ConnectionError(f"unexpected greeting {greeting.get('type')!r}")
            self.stats.connections += 1
            await ws.send(
                json.dumps(
                    {
                        "type": "esp32_hello",
                        "device_id": self.device_id,
                        "firmware_version": "1.0.0",
                        "location": "Ligne A",
                        "sensors": {"vl53l8ch": "0x29", "as7341": "0x39"},
                        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    }
                )
            )
            # Everything not acknowledged is sent again, oldest first.
            resend = [sid for sid in self.unacked if sid not in self.unsent]
            self.stats.resent += len(resend) if self.stats.connections > 1 else 0
            self.unsent = deque(resend + list(self.unsent))
            reader = asyncio.create_task(self.read(ws))
            try:
                await self.send_loop(ws, reader, drain_deadline)
            finally:
                reader.cancel()

    async def send_loop(self, ws, reader: asyncio.Task, drain_deadline: float | None) -> None:
        last_heartbeat = time.monotonic()
        while not self.done:
            if reader.done():
                reader.result()  # raises the connection error, if any
                raise ConnectionError("connection closed by the server")
            while self.unsent:
                sid = self.unsent.popleft()
                if sid in self.unacked:
                    await ws.send(self.unacked[sid])
                    self.stats.sent += 1
            if time.monotonic() - last_heartbeat > 30:
                await ws.send(json.dumps({"type": "heartbeat", "device_id": self.device_id}))
                last_heartbeat = time.monotonic()
            if not self.measuring:
                drain_deadline = drain_deadline or time.monotonic() + self.config.drain_timeout
                if time.monotonic() > drain_deadline:
                    return
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), 1.0)
            except TimeoutError:
                pass

    async def read(self, ws) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            sid = frame.get("sample_id")
            if kind == "ack" and sid in self.unacked:
                del self.unacked[sid]
                if frame.get("status") == "duplicate":
                    self.stats.duplicate += 1
                else:
                    self.stats.saved += 1
            elif kind == "error":
                code = frame.get("code", "error")
                self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
                if code in ("rate_limited", "internal_error", "storage_error") and sid:
                    delay = float(frame.get("retry_after", 1.0))
                    asyncio.get_running_loop().call_later(delay, self._retry, sid)
                elif sid in self.unacked:
                    logger.warning("%s: %s refused: %s", self.device_id, sid, frame.get("detail"))
                    del self.unacked[sid]  # a permanent refusal: resending will not help
            self.wakeup.set()

    def _retry(self, sid: str) -> None:
        if sid in self.unacked:
            self.unsent.append(sid)
            self.wakeup.set()


async def simulate(
    config: SimulatorConfig,
    progress: Callable[[dict[str, StationStats]], None] | None = None,
    every: float = 30.0,
) -> dict[str, StationStats]:
    """Run every station until its measuring time is over and its samples are acknowledged.

    ``progress`` is called every ``every`` seconds with each station's counters so far.
    """
    rng = random.Random(config.seed)
    stations = [
        Station(device_id, config, random.Random(rng.random())) for device_id in config.device_ids
    ]

    async def report() -> None:
        while True:
            await asyncio.sleep(every)
            progress({s.device_id: s.stats for s in stations})

    reporter = asyncio.create_task(report()) if progress else None
    try:
        results = await asyncio.gather(*(station.run() for station in stations))
    finally:
        if reporter:
            reporter.cancel()
    return dict(zip(config.device_ids, results, strict=True))
