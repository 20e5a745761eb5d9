"""Backups and their work rows.

A :class:`Backup` walks ``queued → scanning → copying → verifying → done`` (or ``failed`` /
``cancelled``). The walk of the source tree is a :class:`ScanCursor` (the stack of directories
still to read) advanced in short slices; the directories each slice read are one
:class:`SliceDirectories` row, every other path found is a :class:`FileEntry` work row,
claimed in batches by copy tasks with a lease (``claim_token`` + ``lease_until``). Stored content
is a per-retailer :class:`Chunk` index into encrypted :class:`Pack` files. A finished backup has
a :class:`Snapshot` summary naming its manifest in the repository.
"""

from __future__ import annotations

from django.db import models
from django.db.models import JSONField, Q, Value
from django.utils import timezone

from app.tenancy.models import Retailer


class Backup(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        SCANNING = "scanning"
        COPYING = "copying"
        VERIFYING = "verifying"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    RUNNING = (State.QUEUED, State.SCANNING, State.COPYING, State.VERIFYING)

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="backups")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    files_total = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    total_final = models.BooleanField(default=False)
    files_done = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0, help_text="Content bytes read from the source (0 when unchanged).")
    bytes_new = models.BigIntegerField(default=0, help_text="Compressed bytes of chunks stored for the first time.")
    chunks_new = models.BigIntegerField(default=0)
    files_reused = models.BigIntegerField(default=0)
    files_special = models.BigIntegerField(default=0, help_text="Sockets, FIFOs, devices: skipped.")
    files_unreadable = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    copy_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    copy_generation = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["retailer", "-created_at", "-id"])]
        constraints = [
            # One running backup per retailer: a second click finds it instead of starting another.
            models.UniqueConstraint(
                fields=["retailer"],
                condition=Q(state__in=["queued", "scanning", "copying", "verifying"]),
                name="backups_one_running_per_retailer",
            )
        ]

    def __str__(self) -> str:
        return f"backup {self.pk} of retailer {self.retailer_id} ({self.state})"

    @property
    def running(self) -> bool:
        return self.state in self.RUNNING


class ScanCursor(models.Model):
    """The walk of a backup's source tree: directories still to read, as base64 of their
    relative path bytes (a stack, so memory and row size follow the tree's depth x fan-out of
    unread directories, not its file count). ``slice_number`` names the next slice to run: a
    redelivered slice task whose number is behind it does nothing."""

    backup = models.OneToOneField(Backup, on_delete=models.CASCADE, related_name="cursor")
    stack = models.JSONField(default=list)
    slice_number = models.PositiveIntegerField(default=0)
    done = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"scan of backup {self.backup_id} (slice {self.slice_number})"


class SliceDirectories(models.Model):
    """The directories one scan slice read, as one row: ``[path hex, mode, mtime_ns]`` each, in the
    order read (``backups.directories`` reads them back in path order). A directory needs nothing
    copied and is never claimed, so it is no work row: as :class:`FileEntry` rows the directories
    were ~40 % of a walk's rows (6,745 of 16,745 at 10 k files), each with its two index entries.
    Written in the slice's transaction, so a slice redone after a crash writes it once."""

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="+", db_index=False)
    slice_number = models.PositiveIntegerField()
    directories = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["backup", "slice_number"], name="backups_slice_directories_once")
        ]

    def __str__(self) -> str:
        return f"directories of slice {self.slice_number} of backup {self.backup_id}"


class FileEntry(models.Model):
    """One path of a snapshot, and the work row that copies it."""

    class Kind(models.TextChoices):
        FILE = "file"
        SYMLINK = "symlink"
        DIRECTORY = "dir"
        EXPORT = "export"

    class State(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"
        DONE = "done"
        UNREADABLE = "unreadable"

    # No database foreign key and no index of its own: a key check per row, run at the slice's commit,
    # cost ~75 ms of PostgreSQL's CPU per 16,745 entries (a third of the walk's inserts), and both
    # indexes below lead with ``backup``. Every entry is written by ``backup_start`` or by a scan
    # slice holding the backup's row locked, and Django cascades the delete itself.
    backup = models.ForeignKey(
        Backup, on_delete=models.CASCADE, related_name="entries", db_constraint=False, db_index=False
    )
    kind = models.CharField(max_length=7, choices=Kind.choices)
    path = models.BinaryField(help_text="Relative path, exact bytes (names need not be UTF-8).")
    size = models.BigIntegerField(default=0)
    mode = models.PositiveIntegerField(default=0)
    mtime_ns = models.BigIntegerField(default=0)
    ctime_ns = models.BigIntegerField(default=0)
    inode = models.BigIntegerField(default=0)
    link_target = models.BinaryField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # The walk's COPY leaves the columns below out: the database fills them (db_default), which is
    # ~25 % less for PostgreSQL to parse per row (two jsonb inputs among them) and shorter lines.
    claim_token = models.CharField(max_length=32, blank=True, db_default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_default="")
    chunks = models.JSONField(
        default=list, db_default=Value([], JSONField()), help_text="BLAKE3 chunk ids (hex), in file order."
    )
    reused = models.BooleanField(default=False, db_default=False)
    error = models.TextField(blank=True)
    resume_offset = models.BigIntegerField(
        default=0,
        db_default=0,
        help_text="A large file's bytes already stored (a chunk boundary), for a copy that resumes.",
    )
    resume_chunks = models.JSONField(
        default=list, db_default=Value([], JSONField()), help_text="The chunk ids of those bytes."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backup", "kind", "path"], name="backups_entry_unique_path")]
        # A claim reads (backup, state) in id order up to a batch: an index range scan (copying.entries_claim).
        # Only open entries are in it: directories, symlinks and unchanged files are written done
        # and never cost an index entry here (~20 % of the inserts' index work at 16,745 entries).
        indexes = [
            models.Index(
                fields=["backup", "state", "id"],
                name="backups_entry_open_idx",
                condition=Q(state__in=["pending", "claimed"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {bytes(self.path)!r}"


class Pack(models.Model):
    """An encrypted file of compressed chunks in the repository (``packs/<retailer>/<name>``)."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Chunk(models.Model):
    """Where a chunk is stored: unique per retailer (no dedup across tenants)."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="+")
    chunk_id = models.CharField(max_length=64)
    pack = models.ForeignKey(Pack, on_delete=models.CASCADE, related_name="chunks")
    offset = models.BigIntegerField(help_text="In the pack's plaintext.")
    length = models.IntegerField(help_text="Compressed length.")
    size = models.IntegerField(help_text="Raw length.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "chunk_id"], name="backups_chunk_unique_id")]

    def __str__(self) -> str:
        return self.chunk_id


class Snapshot(models.Model):
    """The summary of a finished backup; its manifest (JSON lines, zstd, AES-GCM) is in the repository."""

    backup = models.OneToOneField(Backup, on_delete=models.CASCADE, related_name="snapshot")
    manifest_name = models.CharField(max_length=200)
    manifest_sha256 = models.CharField(max_length=64, help_text="Of the manifest's plaintext JSON lines.")
    files = models.BigIntegerField()
    bytes = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.manifest_name


class Job(models.Model):
    """A restore or a verify of one backup, with its own progress."""

    class Kind(models.TextChoices):
        RESTORE = "restore"
        VERIFY = "verify"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Existing(models.TextChoices):
        SKIP = "skip"
        OVERWRITE = "overwrite"
        FAIL = "fail"

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=7, choices=Kind.choices)
    state = models.CharField(max_length=7, choices=State.choices, default=State.QUEUED)
    prefix = models.BinaryField(default=b"")
    target = models.CharField(max_length=500, blank=True)
    existing = models.CharField(max_length=9, choices=Existing.choices, default=Existing.FAIL)
    cursor = models.BinaryField(null=True, blank=True, help_text="Last path done (restore) or pack id (verify).")
    slice_number = models.PositiveIntegerField(default=0)
    items_total = models.BigIntegerField(default=0)
    items_done = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    problems = models.JSONField(default=list, help_text="Verify: bad chunks and the files they break.")
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} of backup {self.backup_id} ({self.state})"


class BackupPolicy(models.Model):
    """A retailer's retention and schedule (one row, created with the defaults when first needed).

    Retention keeps, of the ``done`` backups: the newest ``keep_last``; the newest of each of the
    last ``keep_daily`` days; the newest of each of the last ``keep_weekly`` ISO weeks (days and
    weeks in the retailer's time zone). The schedule starts one backup a day once the retailer's
    local hour reaches ``schedule_hour`` (null: off, the default)."""

    retailer = models.OneToOneField(Retailer, on_delete=models.CASCADE, related_name="backup_policy")
    keep_last = models.PositiveIntegerField(default=7)
    keep_daily = models.PositiveIntegerField(default=14)
    keep_weekly = models.PositiveIntegerField(default=8)
    schedule_hour = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0-23, local; null = off.")
    last_scheduled_on = models.DateField(null=True, blank=True, help_text="Local date of the last scheduled start.")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"backup policy of retailer {self.retailer_id}"


class Prune(models.Model):
    """A prune of one retailer's repository: expire backups past retention, drop the index rows
    of chunks no remaining snapshot references (``sweep``), then rewrite or delete the packs
    holding them (``repack``), in slices. It waits (``waiting``) while a backup runs."""

    class State(models.TextChoices):
        QUEUED = "queued"
        WAITING = "waiting"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Phase(models.TextChoices):
        SWEEP = "sweep"
        REPACK = "repack"

    OPEN = (State.QUEUED, State.WAITING, State.RUNNING)

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=7, choices=State.choices, default=State.QUEUED)
    phase = models.CharField(max_length=6, choices=Phase.choices, default=Phase.SWEEP)
    slice_number = models.PositiveIntegerField(default=0)
    pack_cursor = models.BigIntegerField(default=0, help_text="Repack: the last pack id looked at.")
    packs_until = models.BigIntegerField(default=0, help_text="Repack: the newest pack id at the sweep.")
    backups_expired = models.IntegerField(default=0)
    chunks_deleted = models.BigIntegerField(default=0)
    packs_deleted = models.IntegerField(default=0)
    packs_rewritten = models.IntegerField(default=0)
    orphans_deleted = models.IntegerField(default=0, help_text="Pack files and manifests nothing names.")
    bytes_freed = models.BigIntegerField(default=0)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    swept_at = models.DateTimeField(null=True, blank=True, help_text="When the sweep ran (no backup was running).")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["retailer"],
                condition=Q(state__in=["queued", "waiting", "running"]),
                name="backups_one_open_prune_per_retailer",
            )
        ]

    def __str__(self) -> str:
        return f"prune {self.pk} of retailer {self.retailer_id} ({self.state})"
