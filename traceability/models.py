"""Consumer products (table consumer_products) and the per-site daily product counter.

Rows are written only by the PL/pgSQL function register_consumer_product (see the RunSQL
migration); columns keep the seed's names so that SQL and reports read the same table.
"""

from __future__ import annotations

from django.db import models


class ConsumerProduct(models.Model):
    id = models.AutoField(primary_key=True)
    product_id = models.CharField(max_length=50, unique=True)
    qr_code = models.TextField(unique=True)
    lot = models.ForeignKey(
        "gaveurs.Lot", on_delete=models.PROTECT, related_name="products", db_column="lot_id"
    )
    sample = models.OneToOneField(
        "sensors.SensorSample",
        on_delete=models.PROTECT,
        related_name="product",
        db_column="sqal_sample_pk",
        help_text="A sample yields at most one product.",
    )
    sqal_sample_id = models.CharField(max_length=100)
    site_code = models.CharField(max_length=5)

    # SQAL quality, copied at registration (the record that is sealed)
    fusion_score = models.FloatField(null=True, db_column="sqal_fusion_score")
    fusion_grade = models.CharField(max_length=10, db_column="sqal_fusion_grade")
    is_compliant = models.BooleanField(null=True, db_column="sqal_is_compliant")
    tof_volume_mm3 = models.FloatField(null=True, db_column="sqal_tof_volume_mm3")
    tof_surface_uniformity = models.FloatField(null=True, db_column="sqal_tof_surface_uniformity")
    spectral_freshness_index = models.FloatField(
        null=True, db_column="sqal_spectral_freshness_index"
    )

    # Lot data, copied at registration
    lot_code = models.CharField(max_length=50, db_column="lot_code")
    lot_itm = models.FloatField(null=True, db_column="lot_itm_moyen")
    lot_mean_final_weight_g = models.FloatField(null=True, db_column="lot_poids_moyen_final_g")
    lot_feeding_start = models.DateTimeField(null=True, db_column="lot_date_debut_gavage")
    lot_feeding_end = models.DateTimeField(null=True, db_column="lot_date_fin_gavage")
    lot_feeding_days = models.IntegerField(null=True, db_column="lot_duree_gavage_jours")

    # Tamper evidence: the Merkle leaf hash of this record (ledger)
    blockchain_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "consumer_products"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.product_id


class ProductSequence(models.Model):
    """Last product number handed out per site and day (FG_<site>_<YYYYMMDD>_<seq4>)."""

    site_code = models.CharField(max_length=5)
    day = models.DateField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "consumer_product_sequences"
        constraints = [
            models.UniqueConstraint(fields=["site_code", "day"], name="product_sequence_unique")
        ]

    def __str__(self) -> str:
        return f"{self.site_code} {self.day}: {self.last_value}"
