"""`manage.py seed_demo [--seed N]`: realistic demo data (no-op for lots that already exist)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from optimizer.demo import seed_demo


class Command(BaseCommand):
    help = "Create realistic, deterministic demo data (sites, lots, samples, products, ratings)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument("--lots-per-site", type=int, default=8)
        parser.add_argument("--samples-per-lot", type=int, default=16)

    def handle(self, *args, seed: int, lots_per_site: int, samples_per_lot: int, **options) -> None:
        summary = seed_demo(seed=seed, lots_per_site=lots_per_site, samples_per_lot=samples_per_lot)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {summary.sites} sites, {summary.lots} new lots, "
                f"{summary.samples} samples, {summary.products} products, "
                f"{summary.reviews} reviews."
            )
        )
