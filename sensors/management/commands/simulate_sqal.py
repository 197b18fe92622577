"""manage.py simulate_sqal: simulated SQAL stations sending samples to /ws/sensors/."""

from __future__ import annotations

import asyncio
import logging

from django.core.management.base import BaseCommand, CommandError

from sensors.models import Device
from sensors.simulator import FORMATS, SimulatorConfig, simulate


class Command(BaseCommand):
    help = (
        "Simulate SQAL stations (ESP32_LL_01, ESP32_LL_02, ...) sending realistic samples over "
        "the websocket; waits for acks, reconnects with backoff and resends what was not acked."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/sensors/")
        parser.add_argument("--devices", type=int, default=2, help="number of stations")
        parser.add_argument(
            "--prefix", default="ESP32_LL", help="station ids are <prefix>_01, <prefix>_02..."
        )
        parser.add_argument("--rate", type=float, default=1.0, help="samples/s per station")
        parser.add_argument(
            "--duration", type=float, default=0.0, help="seconds of measuring (0: until Ctrl-C)"
        )
        parser.add_argument("--reject-ratio", type=float, default=0.1)
        parser.add_argument("--format", choices=FORMATS, default="mixed", dest="form")
        parser.add_argument(
            "--token",
            action="append",
            default=[],
            help="DEVICE_ID=TOKEN (repeatable), or a bare token for a single station",
        )
        parser.add_argument(
            "--lot",
            default="",
            help="slaughter lot code the stations report (default: each station's lot in admin)",
        )
        parser.add_argument("--drain-timeout", type=float, default=30.0)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options) -> None:
        if options["devices"] < 1 or options["rate"] <= 0:
            raise CommandError("--devices must be at least 1 and --rate above 0")
        if not 0 <= options["reject_ratio"] <= 1:
            raise CommandError("--reject-ratio must be between 0 and 1")
        device_ids = [f"{options['prefix']}_{n:02d}" for n in range(1, options["devices"] + 1)]
        tokens: dict[str, str] = {}
        for value in options["token"]:
            device_id, sep, token = value.partition("=")
            if sep:
                tokens[device_id] = token
            elif len(device_ids) == 1:
                tokens[device_ids[0]] = value
            else:
                raise CommandError("with several stations, give --token DEVICE_ID=TOKEN")
        config = SimulatorConfig(
            url=options["url"],
            device_ids=device_ids,
            rate=options["rate"],
            duration=options["duration"],
            reject_ratio=options["reject_ratio"],
            form=options["form"],
            tokens=tokens,
            lot_codes=self._lot_codes(device_ids, options["lot"]),
            drain_timeout=options["drain_timeout"],
            seed=options["seed"],
        )
        logging.getLogger("websockets").setLevel(logging.WARNING)
        self.stdout.write(
            f"Simulating {', '.join(device_ids)} at {config.rate:g} samples/s each -> {config.url}"
        )
        try:
            results = asyncio.run(simulate(config, progress=self._report, every=30.0))
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
            return
        self._report(results)
        failed = any(s.refused > 0 and s.connections == 0 for s in results.values())
        if failed:
            raise CommandError("a station was refused by the server (token?)")

    def _report(self, results: dict) -> None:
        for device_id, stats in results.items():
            errors = ", ".join(f"{k}={v}" for k, v in sorted(stats.errors.items())) or "none"
            self.stdout.write(
                f"{device_id}: measured {stats.measured}, sent {stats.sent}, saved {stats.saved}, "
                f"duplicate {stats.duplicate}, resent {stats.resent}, "
                f"connections {stats.connections}, errors {errors}"
            )
        self.stdout.flush()

    def _lot_codes(self, device_ids: list[str], lot: str) -> dict[str, str]:
        """The lot each station reports: --lot, else the station's lot in admin when known."""
        if lot:
            return dict.fromkeys(device_ids, lot)
        try:
            return {
                d.device_id: d.assigned_lot.code
                for d in Device.objects.filter(
                    device_id__in=device_ids, assigned_lot__isnull=False
                ).select_related("assigned_lot")
            }
        except Exception:  # no database here: the stations make up a lot code
            return {}
