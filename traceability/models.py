"""Consumer products (table consumer_products) and the per-site daily product counter.

Products are written by the PL/pgSQL function register_consumer_product (see the RunSQL
migration), or in bulk by traceability.services.products_bulk_register for history and synthetic
data; columns keep the seed's names so that SQL and reports read the same table. The scan tables
(counters, events, alerts, forged codes) keep the names they had in the feedback app.
"""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords


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

    # GS1 serial number (AI 21) of the Digital Link on the label: 80 random bits given by the
    # database (migration 0005), never derived from product_id, so that knowing a lot code and
    # stepping serials finds nothing.
    gs1_serial = models.CharField(
        max_length=20,
        unique=True,
        editable=False,
        db_default=models.Func(function="gs1_random_serial", output_field=models.CharField()),
        help_text="Random GS1 serial number (AI 21) printed on the label.",
    )

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


# --- Scans of a product's code: counters, events, copied-label alerts, forged codes --------
# (tables keep the names they had in the feedback app: moved by state-only migrations)


class ProductScanStats(models.Model):
    """How often a product unit's code was scanned (one row per product, upserted per scan)."""

    product = models.OneToOneField(
        ConsumerProduct,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="scan_stats",
    )
    scan_count = models.PositiveIntegerField(default=0)
    # Distinct (client, day) pairs that scanned it: the copied-label rule counts these, so one
    # phone reloading the page cannot raise it (client hashes are salted per day).
    distinct_clients = models.PositiveIntegerField(default=0)
    first_scanned_at = models.DateTimeField()
    # Not indexed: every scan updates this row, and an unindexed row updates in place (HOT).
    last_scanned_at = models.DateTimeField()

    class Meta:
        db_table = "feedback_product_scan_stats"
        ordering = ["-scan_count"]
        verbose_name = "product scan count"

    def __str__(self) -> str:
        return f"{self.product_id}: {self.scan_count} scans"


class ProductScanClient(models.Model):
    """A (product, daily client hash) pair that scanned it once or more: how distinct clients
    are counted in the scan statement (an insert that conflicts is a client seen before)."""

    pk = models.CompositePrimaryKey("product", "client_hash")
    product = models.ForeignKey(
        ConsumerProduct, on_delete=models.CASCADE, related_name="+", db_constraint=True
    )
    client_hash = models.CharField(max_length=16)

    class Meta:
        db_table = "traceability_product_scan_clients"

    def __str__(self) -> str:
        return f"{self.product_id}: {self.client_hash}"


class DailySalt(models.Model):
    """The random key of one day's client hashes (traceability/scans.py). Deleted once the day
    is over, after which that day's hashes cannot be linked back to any address, even by
    someone holding SECRET_KEY and the database."""

    day = models.DateField(primary_key=True)
    salt = models.BinaryField(max_length=32)

    class Meta:
        db_table = "traceability_daily_salts"

    def __str__(self) -> str:
        return str(self.day)


class ScanChannel(models.TextChoices):
    PAGE = "page", "Scan page"
    API = "api", "API"


class PlaceSource(models.TextChoices):
    NONE = "", "Unknown"
    CDN = "cdn", "CDN country header"
    LANGUAGE = "language", "Browser language region"


class ScanEvent(models.Model):
    """One scan of a valid code. Never the IP: a coarse place and a daily-salted client hash."""

    # Indexed by (product, scanned_at) below; a second index on product alone would only add
    # work to every scan.
    product = models.ForeignKey(
        ConsumerProduct,
        on_delete=models.CASCADE,
        related_name="scan_events",
        db_index=False,
    )
    scanned_at = models.DateTimeField()
    channel = models.CharField(max_length=8, choices=ScanChannel.choices)
    # ISO 3166-1 alpha-2 country, from a CDN header or the region of the browser language.
    country = models.CharField(max_length=2, blank=True)
    place_source = models.CharField(max_length=10, choices=PlaceSource.choices, blank=True)
    language = models.CharField(max_length=8, blank=True)
    client_hash = models.CharField(
        max_length=16, blank=True, help_text="HMAC of the client address and the day, truncated."
    )

    class Meta:
        db_table = "feedback_scan_events"
        ordering = ["-scanned_at"]
        indexes = [models.Index(fields=["product", "scanned_at"])]

    def __str__(self) -> str:
        return f"{self.product_id} @ {self.scanned_at:%Y-%m-%d %H:%M}"


class ScanAlert(models.Model):
    """A code scanned more often than one unit can be: the label was probably copied."""

    product = models.OneToOneField(
        ConsumerProduct, on_delete=models.CASCADE, related_name="scan_alert"
    )
    threshold = models.PositiveIntegerField(help_text="Distinct clients allowed before the alert.")
    scan_count = models.PositiveIntegerField(help_text="Scans when the alert was raised.")
    distinct_clients = models.PositiveIntegerField(
        default=0, help_text="Distinct clients (per day) when the alert was raised."
    )
    raised_at = models.DateTimeField(db_index=True)
    is_resolved = models.BooleanField(default=False)
    resolution_note = models.CharField(max_length=200, blank=True)
    # Staff's resolutions, with who and when (the alert itself is raised by the scan statement).
    history = HistoricalRecords()

    class Meta:
        db_table = "feedback_scan_alerts"
        ordering = ["is_resolved", "-raised_at"]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.distinct_clients} clients > {self.threshold}"


class ForgedScanAttempt(models.Model):
    """A well-formed code whose signature does not verify (altered or forged label)."""

    code = models.CharField(max_length=300)
    claimed_product_id = models.CharField(max_length=50, blank=True)
    attempted_at = models.DateTimeField(db_index=True)
    channel = models.CharField(max_length=8, choices=ScanChannel.choices)
    country = models.CharField(max_length=2, blank=True)
    place_source = models.CharField(max_length=10, choices=PlaceSource.choices, blank=True)
    client_hash = models.CharField(max_length=16, blank=True)

    class Meta:
        db_table = "feedback_forged_scan_attempts"
        ordering = ["-attempted_at"]

    def __str__(self) -> str:
        return f"{self.claimed_product_id or self.code[:40]} @ {self.attempted_at:%Y-%m-%d %H:%M}"


# --- Tamper-evident ledger (traceability/ledger/): an RFC 9162 Merkle log of products ---


class LedgerEntryKind(models.TextChoices):
    """What a leaf seals: each kind has its own canonical record (traceability/ledger/records)."""

    PRODUCT = "product", "Product"
    RECALL = "recall", "Recall declaration"
    RECALL_CLOSURE = "recall_closure", "Recall closing"


class LedgerLeaf(models.Model):
    """One entry sealed in the log: its position, leaf hash and the canonical record hashed.

    A leaf seals exactly one row, named by ``kind``: a product, a recall declaration or a
    recall closing (a check constraint holds it)."""

    leaf_index = models.BigIntegerField(primary_key=True)
    kind = models.CharField(
        max_length=16,
        choices=LedgerEntryKind.choices,
        default=LedgerEntryKind.PRODUCT,
        db_default=LedgerEntryKind.PRODUCT,
    )
    product = models.OneToOneField(
        ConsumerProduct,
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="product_pk",
        null=True,
        blank=True,
    )
    recall = models.OneToOneField(
        "traceability.Recall",
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="recall_pk",
        null=True,
        blank=True,
    )
    recall_closure = models.OneToOneField(
        "traceability.RecallClosure",
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="recall_closure_pk",
        null=True,
        blank=True,
    )
    leaf_hash = models.BinaryField(max_length=32)
    record = models.TextField(help_text="The canonical JSON record as sealed (UTF-8).")
    sealed_at = models.DateTimeField()

    class Meta:
        db_table = "ledger_leaves"
        ordering = ["leaf_index"]
        constraints = [
            models.CheckConstraint(
                name="ledger_leaf_one_subject_of_its_kind",
                condition=(
                    models.Q(
                        kind=LedgerEntryKind.PRODUCT,
                        product__isnull=False,
                        recall__isnull=True,
                        recall_closure__isnull=True,
                    )
                    | models.Q(
                        kind=LedgerEntryKind.RECALL,
                        product__isnull=True,
                        recall__isnull=False,
                        recall_closure__isnull=True,
                    )
                    | models.Q(
                        kind=LedgerEntryKind.RECALL_CLOSURE,
                        product__isnull=True,
                        recall__isnull=True,
                        recall_closure__isnull=False,
                    )
                ),
            )
        ]

    def __str__(self) -> str:
        subject = self.product_id or self.recall_id or self.recall_closure_id
        return f"#{self.leaf_index} {self.kind} {subject}"


class LedgerNode(models.Model):
    """Hash of one complete subtree: level 0 holds the leaves, level l covers 2**l leaves.

    Node (l, i) covers leaves [i * 2**l, (i + 1) * 2**l). Every complete subtree is stored once,
    when its last leaf is appended, so any proof or root needs O(log n) row reads.
    """

    pk = models.CompositePrimaryKey("level", "index")
    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField(db_column="idx")
    hash = models.BinaryField(max_length=32)

    class Meta:
        db_table = "ledger_nodes"

    def __str__(self) -> str:
        return f"node ({self.level}, {self.index})"


class LedgerTile(models.Model):
    """Tier t, tile k: every node of levels 4t..4t+3 under node (4t+4, k), in one row.

    A C2SP-style tile of height 4 that keeps its inner levels: 30 hashes in a fixed layout
    (``merkle.TILE_OFFSETS``: the 16 nodes of level 4t, then 8, 4 and 2), 32 zero bytes where a
    node is not complete yet. Its key is ``t << 56 | k`` (``merkle.tile_key``): one bigint, so
    that a proof reads its tiles in one index scan (``= ANY``). Written from ``ledger_nodes``
    when a head is signed (``ledger_write_tiles``, migration ``traceability/0016``), so that a
    proof under the latest head reads one row per four levels (about log2(n)/4 for the leaf and
    as many for the head's right edge) instead of one per level. Derived data: ``ledger_nodes``
    stays the reference and ``verify_ledger`` compares every tile with the rebuilt tree.
    """

    tile = models.BigIntegerField(primary_key=True)
    hashes = models.BinaryField(max_length=960)

    class Meta:
        db_table = "ledger_tiles"

    def __str__(self) -> str:
        return f"tile ({self.tile >> 56}, {self.tile & ((1 << 56) - 1)})"


class LedgerHead(models.Model):
    """A signed tree head: Ed25519 over (timestamp, tree size, root hash), RFC 6962 layout."""

    tree_size = models.BigIntegerField(primary_key=True)
    root_hash = models.BinaryField(max_length=32)
    timestamp_ms = models.BigIntegerField(help_text="Milliseconds since the Unix epoch, UTC.")
    signature = models.BinaryField(max_length=64)
    key_id = models.CharField(max_length=16, help_text="First 16 hex digits of SHA-256(key).")

    class Meta:
        db_table = "ledger_heads"
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"STH size {self.tree_size}"


class LedgerVerification(models.Model):
    """The outcome of one `manage.py verify_ledger` run, for quality staff in admin."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    tree_size = models.BigIntegerField()
    heads_checked = models.IntegerField(default=0)
    products_checked = models.IntegerField(default=0)
    findings = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)

    class Meta:
        db_table = "ledger_verifications"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {'OK' if self.ok else 'FINDINGS'}"


class ApiToken(models.Model):
    """A bearer token for the staff API (``Authorization: Bearer gt_...``), stored hashed.

    The clear token is shown once, when created (``manage.py create_api_token``); only its
    SHA-256 is kept. It acts for its user, and only while that user is active staff.
    """

    user = models.ForeignKey(
        "auth.User", on_delete=models.CASCADE, related_name="api_tokens", editable=False
    )
    name = models.CharField(max_length=100, help_text="What or who uses this token.")
    prefix = models.CharField(max_length=12, editable=False, help_text="Start of the token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the token may do beyond the staff API, e.g. "epcis:read" (traceability/gs1/api.py).
    scopes = models.JSONField(default=list, blank=True, help_text='e.g. ["epcis:read"]')

    history = HistoricalRecords()

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


# --- Recalls and withdrawals: append-only (a database trigger refuses UPDATE and DELETE) ---


class RecallKind(models.TextChoices):
    RECALL = "recall", "Recall (consumers return or destroy the product)"
    WITHDRAWAL = "withdrawal", "Withdrawal from sale"


class RecallScope(models.TextChoices):
    LOTS = "lots", "One or more lots"
    SITE_DATES = "site_dates", "A site over a date range"
    PRODUCTS = "products", "A list of products"


class Recall(models.Model):
    """A recall or withdrawal as declared: never edited nor deleted; closing it is a
    ``RecallClosure``. The affected units are not copied: they are resolved from the scope
    (``RecallLot`` rows, site and production dates, or ``RecallProduct`` rows) by one query."""

    kind = models.CharField(max_length=12, choices=RecallKind.choices)
    reference = models.CharField(max_length=64, unique=True)
    reason = models.TextField()
    instructions_fr = models.TextField(help_text="What consumers should do, in French.")
    instructions_en = models.TextField(help_text="What consumers should do, in English.")
    starts_at = models.DateTimeField(help_text="Consumers see the recall from this time.")
    scope = models.CharField(max_length=12, choices=RecallScope.choices)
    site = models.ForeignKey(
        "gaveurs.Site", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    produced_from = models.DateField(null=True, blank=True, help_text="First production day.")
    produced_until = models.DateField(null=True, blank=True, help_text="Last production day.")
    declared_at = models.DateTimeField()
    declared_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        db_table = "recalls"
        ordering = ["-declared_at"]
        default_permissions = ("add", "view")
        constraints = [
            models.CheckConstraint(
                name="recall_site_scope_complete",
                condition=~models.Q(scope=RecallScope.SITE_DATES)
                | models.Q(
                    site__isnull=False,
                    produced_from__isnull=False,
                    produced_until__isnull=False,
                    produced_from__lte=models.F("produced_until"),
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.get_kind_display()})"


class RecallLot(models.Model):
    recall = models.ForeignKey(Recall, on_delete=models.PROTECT, related_name="scope_lots")
    lot = models.ForeignKey("gaveurs.Lot", on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "recall_lots"
        default_permissions = ()
        indexes = [models.Index(fields=["lot"], name="recall_lots_lot_idx")]
        constraints = [models.UniqueConstraint(fields=["recall", "lot"], name="recall_lot_once")]

    def __str__(self) -> str:
        return f"{self.recall_id}: lot {self.lot_id}"


class RecallProduct(models.Model):
    recall = models.ForeignKey(Recall, on_delete=models.PROTECT, related_name="scope_products")
    product = models.ForeignKey(ConsumerProduct, on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "recall_products"
        default_permissions = ()
        indexes = [models.Index(fields=["product"], name="recall_products_product_idx")]
        constraints = [
            models.UniqueConstraint(fields=["recall", "product"], name="recall_product_once")
        ]

    def __str__(self) -> str:
        return f"{self.recall_id}: product {self.product_id}"


class RecallClosure(models.Model):
    """The closing of a recall, with its reason: a record of its own, never changed."""

    recall = models.OneToOneField(Recall, on_delete=models.PROTECT, related_name="closure")
    reason = models.TextField()
    closed_at = models.DateTimeField()
    closed_by = models.ForeignKey(
        "auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        db_table = "recall_closures"
        default_permissions = ("add", "view")

    def __str__(self) -> str:
        return f"closing of {self.recall_id}"
