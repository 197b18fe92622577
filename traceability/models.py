"""Consumer products (table consumer_products) and the per-site daily product counter.

Products are written by the PL/pgSQL function register_consumer_product (see the RunSQL
migration), or in bulk by traceability.services.products_bulk_register for history and synthetic
data; columns keep the seed's names so that SQL and reports read the same table. The scan tables
(counters, events, alerts, forged codes) keep the names they had in the feedback app.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models.functions import Cast, Now
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords


class ConsumerProduct(models.Model):
    id = models.AutoField(primary_key=True)
    product_id = models.CharField(_("product id"), max_length=50, unique=True)
    qr_code = models.TextField(_("qr code"), unique=True)
    lot = models.ForeignKey(
        "gaveurs.Lot",
        verbose_name=_("lot"),
        on_delete=models.PROTECT,
        related_name="products",
        db_column="lot_id",
    )
    sample = models.OneToOneField(
        "sensors.SensorSample",
        verbose_name=_("sample"),
        on_delete=models.PROTECT,
        related_name="product",
        db_column="sqal_sample_pk",
        help_text=_("A sample yields at most one product."),
    )
    sqal_sample_id = models.CharField(_("sqal sample id"), max_length=100)
    site_code = models.CharField(_("site code"), max_length=5)

    # SQAL quality, copied at registration (the record that is sealed)
    fusion_score = models.FloatField(_("fusion score"), null=True, db_column="sqal_fusion_score")
    fusion_grade = models.CharField(_("fusion grade"), max_length=10, db_column="sqal_fusion_grade")
    is_compliant = models.BooleanField(_("is compliant"), null=True, db_column="sqal_is_compliant")
    tof_volume_mm3 = models.FloatField(
        _("tof volume mm3"), null=True, db_column="sqal_tof_volume_mm3"
    )
    tof_surface_uniformity = models.FloatField(
        _("tof surface uniformity"), null=True, db_column="sqal_tof_surface_uniformity"
    )
    spectral_freshness_index = models.FloatField(
        _("spectral freshness index"), null=True, db_column="sqal_spectral_freshness_index"
    )

    # Lot data, copied at registration
    lot_code = models.CharField(_("lot code"), max_length=50, db_column="lot_code")
    lot_itm = models.FloatField(_("lot itm"), null=True, db_column="lot_itm_moyen")
    lot_mean_final_weight_g = models.FloatField(
        _("lot mean final weight g"), null=True, db_column="lot_poids_moyen_final_g"
    )
    lot_feeding_start = models.DateTimeField(
        _("lot feeding start"), null=True, db_column="lot_date_debut_gavage"
    )
    lot_feeding_end = models.DateTimeField(
        _("lot feeding end"), null=True, db_column="lot_date_fin_gavage"
    )
    lot_feeding_days = models.IntegerField(
        _("lot feeding days"), null=True, db_column="lot_duree_gavage_jours"
    )

    # GS1 serial number (AI 21) of the Digital Link on the label: 80 random bits given by the
    # database (migration 0005), never derived from product_id, so that knowing a lot code and
    # stepping serials finds nothing.
    gs1_serial = models.CharField(
        _("gs1 serial"),
        max_length=20,
        unique=True,
        editable=False,
        db_default=models.Func(function="gs1_random_serial", output_field=models.CharField()),
        help_text=_("Random GS1 serial number (AI 21) printed on the label."),
    )

    # Tamper evidence: the Merkle leaf hash of this record (ledger)
    blockchain_hash = models.CharField(_("blockchain hash"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        db_table = "consumer_products"
        ordering = ["-created_at"]
        verbose_name = _("consumer product")
        verbose_name_plural = _("consumer products")

    def __str__(self) -> str:
        return self.product_id


class ProductSequence(models.Model):
    """Last product number handed out per site and day (FG_<site>_<YYYYMMDD>_<seq4>)."""

    site_code = models.CharField(_("site code"), max_length=5)
    day = models.DateField(_("day"))
    last_value = models.PositiveIntegerField(_("last value"), default=0)

    class Meta:
        db_table = "consumer_product_sequences"
        verbose_name = _("product sequence")
        verbose_name_plural = _("product sequences")
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
        verbose_name=_("product"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="scan_stats",
    )
    scan_count = models.PositiveIntegerField(_("scan count"), default=0)
    # Distinct (client, day) pairs that scanned it: the copied-label rule counts these, so one
    # phone reloading the page cannot raise it (client hashes are salted per day).
    distinct_clients = models.PositiveIntegerField(_("distinct clients"), default=0)
    first_scanned_at = models.DateTimeField(_("first scanned at"))
    # Not indexed: every scan updates this row, and an unindexed row updates in place (HOT).
    last_scanned_at = models.DateTimeField(_("last scanned at"))

    class Meta:
        db_table = "feedback_product_scan_stats"
        ordering = ["-scan_count"]
        verbose_name = _("product scan count")
        verbose_name_plural = _("product scan counts")

    def __str__(self) -> str:
        return f"{self.product_id}: {self.scan_count} scans"


class ProductScanClient(models.Model):
    """A (product, daily client hash) pair that scanned it once or more: how distinct clients
    are counted in the scan statement (an insert that conflicts is a client seen before)."""

    pk = models.CompositePrimaryKey("product", "client_hash")
    product = models.ForeignKey(
        ConsumerProduct,
        verbose_name=_("product"),
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=True,
    )
    client_hash = models.CharField(_("client hash"), max_length=16)
    # The (UTC) day of the hash's salt, written by PostgreSQL (the scan statement's transaction
    # time; Django's sessions are in UTC). A pair only serves to count distinct clients within its
    # day: past days' pairs are removed by ``purge_expired``.
    day = models.DateField(_("day"), db_default=Cast(Now(), models.DateField()), editable=False)

    class Meta:
        db_table = "traceability_product_scan_clients"
        # Rows arrive in day order: a block-range index finds past days for the purge at almost
        # no cost to the scan statement's insert.
        indexes = [BrinIndex(fields=["day"], name="scan_clients_day_brin")]
        verbose_name = _("product scan client")
        verbose_name_plural = _("product scan clients")

    def __str__(self) -> str:
        return f"{self.product_id}: {self.client_hash}"


class DailySalt(models.Model):
    """The random key of one day's client hashes (traceability/scans.py). Deleted once the day
    is over, after which that day's hashes cannot be linked back to any address, even by
    someone holding SECRET_KEY and the database."""

    day = models.DateField(_("day"), primary_key=True)
    salt = models.BinaryField(_("salt"), max_length=32)

    class Meta:
        db_table = "traceability_daily_salts"
        verbose_name = _("daily salt")
        verbose_name_plural = _("daily salts")

    def __str__(self) -> str:
        return str(self.day)


class ScanChannel(models.TextChoices):
    PAGE = "page", _("Scan page")
    API = "api", _("API")


class PlaceSource(models.TextChoices):
    NONE = "", _("Unknown")
    CDN = "cdn", _("CDN country header")
    LANGUAGE = "language", _("Browser language region")


class ScanEvent(models.Model):
    """One scan of a valid code. Never the IP: a coarse place and a daily-salted client hash."""

    # Indexed by (product, scanned_at) below; a second index on product alone would only add
    # work to every scan.
    product = models.ForeignKey(
        ConsumerProduct,
        verbose_name=_("product"),
        on_delete=models.CASCADE,
        related_name="scan_events",
        db_index=False,
    )
    scanned_at = models.DateTimeField(_("scanned at"))
    channel = models.CharField(_("channel"), max_length=8, choices=ScanChannel.choices)
    # ISO 3166-1 alpha-2 country, from a CDN header or the region of the browser language.
    country = models.CharField(_("country"), max_length=2, blank=True)
    place_source = models.CharField(
        _("place source"), max_length=10, choices=PlaceSource.choices, blank=True
    )
    language = models.CharField(_("language"), max_length=8, blank=True)
    client_hash = models.CharField(
        _("client hash"),
        max_length=16,
        blank=True,
        help_text=_("HMAC of the client address and the day, truncated."),
    )

    class Meta:
        db_table = "feedback_scan_events"
        ordering = ["-scanned_at"]
        verbose_name = _("scan event")
        verbose_name_plural = _("scan events")
        indexes = [models.Index(fields=["product", "scanned_at"])]

    def __str__(self) -> str:
        return f"{self.product_id} @ {self.scanned_at:%Y-%m-%d %H:%M}"


class ScanAlert(models.Model):
    """A code scanned more often than one unit can be: the label was probably copied."""

    product = models.OneToOneField(
        ConsumerProduct,
        verbose_name=_("product"),
        on_delete=models.CASCADE,
        related_name="scan_alert",
    )
    threshold = models.PositiveIntegerField(
        _("threshold"), help_text=_("Distinct clients allowed before the alert.")
    )
    scan_count = models.PositiveIntegerField(
        _("scan count"), help_text=_("Scans when the alert was raised.")
    )
    distinct_clients = models.PositiveIntegerField(
        _("distinct clients"),
        default=0,
        help_text=_("Distinct clients (per day) when the alert was raised."),
    )
    raised_at = models.DateTimeField(_("raised at"), db_index=True)
    is_resolved = models.BooleanField(_("is resolved"), default=False)
    resolution_note = models.CharField(_("resolution note"), max_length=200, blank=True)
    # Staff's resolutions, with who and when (the alert itself is raised by the scan statement).
    history = HistoricalRecords()

    class Meta:
        db_table = "feedback_scan_alerts"
        ordering = ["is_resolved", "-raised_at"]
        verbose_name = _("scan alert")
        verbose_name_plural = _("scan alerts")

    def __str__(self) -> str:
        return f"{self.product_id}: {self.distinct_clients} clients > {self.threshold}"


class ForgedScanAttempt(models.Model):
    """A well-formed code whose signature does not verify (altered or forged label)."""

    code = models.CharField(_("code"), max_length=300)
    claimed_product_id = models.CharField(_("claimed product id"), max_length=50, blank=True)
    attempted_at = models.DateTimeField(_("attempted at"), db_index=True)
    channel = models.CharField(_("channel"), max_length=8, choices=ScanChannel.choices)
    country = models.CharField(_("country"), max_length=2, blank=True)
    place_source = models.CharField(
        _("place source"), max_length=10, choices=PlaceSource.choices, blank=True
    )
    client_hash = models.CharField(_("client hash"), max_length=16, blank=True)

    class Meta:
        db_table = "feedback_forged_scan_attempts"
        ordering = ["-attempted_at"]
        verbose_name = _("forged scan attempt")
        verbose_name_plural = _("forged scan attempts")

    def __str__(self) -> str:
        return f"{self.claimed_product_id or self.code[:40]} @ {self.attempted_at:%Y-%m-%d %H:%M}"


# --- Tamper-evident ledger (traceability/ledger/): an RFC 9162 Merkle log of products ---


class LedgerEntryKind(models.TextChoices):
    """What a leaf seals: each kind has its own canonical record (traceability/ledger/records)."""

    PRODUCT = "product", _("Product")
    RECALL = "recall", _("Recall declaration")
    RECALL_CLOSURE = "recall_closure", _("Recall closing")


class LedgerLeaf(models.Model):
    """One entry sealed in the log: its position, leaf hash and the canonical record hashed.

    A leaf seals exactly one row, named by ``kind``: a product, a recall declaration or a
    recall closing (a check constraint holds it)."""

    leaf_index = models.BigIntegerField(_("leaf index"), primary_key=True)
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=LedgerEntryKind.choices,
        default=LedgerEntryKind.PRODUCT,
        db_default=LedgerEntryKind.PRODUCT,
    )
    product = models.OneToOneField(
        ConsumerProduct,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="product_pk",
        null=True,
        blank=True,
    )
    recall = models.OneToOneField(
        "traceability.Recall",
        verbose_name=_("recall"),
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="recall_pk",
        null=True,
        blank=True,
    )
    recall_closure = models.OneToOneField(
        "traceability.RecallClosure",
        verbose_name=_("recall closure"),
        on_delete=models.PROTECT,
        related_name="ledger_leaf",
        db_column="recall_closure_pk",
        null=True,
        blank=True,
    )
    leaf_hash = models.BinaryField(_("leaf hash"), max_length=32)
    record = models.TextField(
        _("record"), help_text=_("The canonical JSON record as sealed (UTF-8).")
    )
    sealed_at = models.DateTimeField(_("sealed at"))

    class Meta:
        db_table = "ledger_leaves"
        ordering = ["leaf_index"]
        verbose_name = _("ledger leaf")
        verbose_name_plural = _("ledger leaves")
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
    level = models.PositiveSmallIntegerField(_("level"))
    index = models.BigIntegerField(_("index"), db_column="idx")
    hash = models.BinaryField(_("hash"), max_length=32)

    class Meta:
        db_table = "ledger_nodes"
        verbose_name = _("ledger node")
        verbose_name_plural = _("ledger nodes")

    def __str__(self) -> str:
        return f"node ({self.level}, {self.index})"


class LedgerTile(models.Model):
    """Tier t, tile k: every node of levels 4t..4t+3 under node (4t+4, k), in one row.

    A C2SP-style tile of height 4 that keeps its inner levels: 30 hashes in a fixed layout
    (``merkle.TILE_OFFSETS``: the 16 nodes of level 4t, then 8, 4 and 2), 32 zero bytes where a
    node is not complete yet. Its key is ``t << 56 | k`` (``merkle.tile_key``): one bigint, so
    that a proof reads its tiles in one index scan (``= ANY``). Written from ``ledger_nodes``
    when a head is signed (``ledger_write_tiles``, migration ``traceability/0018``), so that a
    proof under the latest head reads one row per four levels (about log2(n)/4 for the leaf and
    as many for the head's right edge) instead of one per level. Derived data: ``ledger_nodes``
    stays the reference and ``verify_ledger`` compares every tile with the rebuilt tree.
    """

    tile = models.BigIntegerField(_("tile"), primary_key=True)
    hashes = models.BinaryField(_("hashes"), max_length=960)

    class Meta:
        db_table = "ledger_tiles"
        verbose_name = _("ledger tile")
        verbose_name_plural = _("ledger tiles")

    def __str__(self) -> str:
        return f"tile ({self.tile >> 56}, {self.tile & ((1 << 56) - 1)})"


class LedgerHead(models.Model):
    """A signed tree head: Ed25519 over (timestamp, tree size, root hash), RFC 6962 layout."""

    tree_size = models.BigIntegerField(_("tree size"), primary_key=True)
    root_hash = models.BinaryField(_("root hash"), max_length=32)
    timestamp_ms = models.BigIntegerField(
        _("timestamp ms"), help_text=_("Milliseconds since the Unix epoch, UTC.")
    )
    signature = models.BinaryField(_("signature"), max_length=64)
    key_id = models.CharField(
        _("key id"), max_length=16, help_text=_("First 16 hex digits of SHA-256(key).")
    )
    # The nodes every inclusion proof under this head ends with (ledger.merkle.head_edge);
    # empty for heads signed before it existed (their proofs read ledger_nodes).
    edge_hashes = models.BinaryField(
        _("edge hashes"),
        null=True,
        editable=False,
        help_text=_("The head's frontier nodes and their folds, which end every proof under it."),
    )

    class Meta:
        db_table = "ledger_heads"
        ordering = ["-tree_size"]
        verbose_name = _("ledger head")
        verbose_name_plural = _("ledger heads")

    def __str__(self) -> str:
        return f"STH size {self.tree_size}"


class LedgerVerification(models.Model):
    """The outcome of one `manage.py verify_ledger` run, for quality staff in admin."""

    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    ok = models.BooleanField(_("ok"))
    tree_size = models.BigIntegerField(_("tree size"))
    heads_checked = models.IntegerField(_("heads checked"), default=0)
    products_checked = models.IntegerField(_("products checked"), default=0)
    findings = models.JSONField(_("findings"), default=list, blank=True)
    summary = models.TextField(_("summary"), blank=True)

    class Meta:
        db_table = "ledger_verifications"
        ordering = ["-started_at"]
        # The latest run is read by every cold ledger proof and scan (its findings, its id).
        indexes = [models.Index(fields=["started_at"], name="ledger_verifications_started")]
        verbose_name = _("ledger verification")
        verbose_name_plural = _("ledger verifications")

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {'OK' if self.ok else 'FINDINGS'}"


class ApiToken(models.Model):
    """A bearer token for the staff API (``Authorization: Bearer gt_...``), stored hashed.

    The clear token is shown once, when created (``manage.py create_api_token``); only its
    SHA-256 is kept. It acts for its user, and only while that user is active staff.
    """

    user = models.ForeignKey(
        "auth.User",
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
        editable=False,
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("What or who uses this token."))
    prefix = models.CharField(
        _("prefix"), max_length=12, editable=False, help_text=_("Start of the token.")
    )
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    # What the token may do beyond the staff API, e.g. "epcis:read" (traceability/gs1/api.py).
    scopes = models.JSONField(
        _("scopes"), default=list, blank=True, help_text=_('e.g. ["epcis:read"]')
    )

    history = HistoricalRecords()

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


# --- Recalls and withdrawals: append-only (a database trigger refuses UPDATE and DELETE) ---


class RecallKind(models.TextChoices):
    RECALL = "recall", _("Recall (consumers return or destroy the product)")
    WITHDRAWAL = "withdrawal", _("Withdrawal from sale")


class RecallScope(models.TextChoices):
    LOTS = "lots", _("One or more lots")
    SITE_DATES = "site_dates", _("A site over a date range")
    PRODUCTS = "products", _("A list of products")


class Recall(models.Model):
    """A recall or withdrawal as declared: never edited nor deleted; closing it is a
    ``RecallClosure``. The affected units are not copied: they are resolved from the scope
    (``RecallLot`` rows, site and production dates, or ``RecallProduct`` rows) by one query."""

    kind = models.CharField(_("kind"), max_length=12, choices=RecallKind.choices)
    reference = models.CharField(_("reference"), max_length=64, unique=True)
    reason = models.TextField(_("reason"))
    instructions_fr = models.TextField(
        _("instructions fr"), help_text=_("What consumers should do, in French.")
    )
    instructions_en = models.TextField(
        _("instructions en"), help_text=_("What consumers should do, in English.")
    )
    starts_at = models.DateTimeField(
        _("starts at"), help_text=_("Consumers see the recall from this time.")
    )
    scope = models.CharField(_("scope"), max_length=12, choices=RecallScope.choices)
    site = models.ForeignKey(
        "gaveurs.Site",
        verbose_name=_("site"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    produced_from = models.DateField(
        _("produced from"), null=True, blank=True, help_text=_("First production day.")
    )
    produced_until = models.DateField(
        _("produced until"), null=True, blank=True, help_text=_("Last production day.")
    )
    declared_at = models.DateTimeField(_("declared at"))
    declared_by = models.ForeignKey(
        "auth.User",
        verbose_name=_("declared by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    history = HistoricalRecords()

    class Meta:
        db_table = "recalls"
        ordering = ["-declared_at"]
        default_permissions = ("add", "view")
        verbose_name = _("recall")
        verbose_name_plural = _("recalls")
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
    recall = models.ForeignKey(
        Recall, verbose_name=_("recall"), on_delete=models.PROTECT, related_name="scope_lots"
    )
    lot = models.ForeignKey(
        "gaveurs.Lot", verbose_name=_("lot"), on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "recall_lots"
        default_permissions = ()
        verbose_name = _("recall lot")
        verbose_name_plural = _("recall lots")
        indexes = [models.Index(fields=["lot"], name="recall_lots_lot_idx")]
        constraints = [models.UniqueConstraint(fields=["recall", "lot"], name="recall_lot_once")]

    def __str__(self) -> str:
        return f"{self.recall_id}: lot {self.lot_id}"


class RecallProduct(models.Model):
    recall = models.ForeignKey(
        Recall, verbose_name=_("recall"), on_delete=models.PROTECT, related_name="scope_products"
    )
    product = models.ForeignKey(
        ConsumerProduct, verbose_name=_("product"), on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "recall_products"
        default_permissions = ()
        verbose_name = _("recall product")
        verbose_name_plural = _("recall products")
        indexes = [models.Index(fields=["product"], name="recall_products_product_idx")]
        constraints = [
            models.UniqueConstraint(fields=["recall", "product"], name="recall_product_once")
        ]

    def __str__(self) -> str:
        return f"{self.recall_id}: product {self.product_id}"


class RecallClosure(models.Model):
    """The closing of a recall, with its reason: a record of its own, never changed."""

    recall = models.OneToOneField(
        Recall, verbose_name=_("recall"), on_delete=models.PROTECT, related_name="closure"
    )
    reason = models.TextField(_("reason"))
    closed_at = models.DateTimeField(_("closed at"))
    closed_by = models.ForeignKey(
        "auth.User",
        verbose_name=_("closed by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    history = HistoricalRecords()

    class Meta:
        db_table = "recall_closures"
        default_permissions = ("add", "view")
        verbose_name = _("recall closure")
        verbose_name_plural = _("recall closures")

    def __str__(self) -> str:
        return f"closing of {self.recall_id}"
