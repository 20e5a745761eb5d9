"""Serializers shared by the backups API modules."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from app.pagination import CursorPage, datetime_readable
from backups.models import Backup, FileEntry, Job
from backups.paths import path_b64, path_text
from backups.progress import backup_eta_seconds, backup_rate


class NewestFirst(CursorPage):
    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def position_readable(self, position: str) -> bool:
        return datetime_readable(position)


class BackupOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=Backup.State.choices)
    files_total = serializers.IntegerField(help_text="Known so far; final once total_final is true.")
    bytes_total = serializers.IntegerField()
    total_final = serializers.BooleanField(help_text="The walk of the source is finished.")
    files_done = serializers.IntegerField()
    bytes_done = serializers.IntegerField()
    bytes_read = serializers.IntegerField(help_text="Content read from the source (0 for an unchanged re-run).")
    bytes_new = serializers.IntegerField(help_text="Compressed bytes stored for the first time.")
    chunks_new = serializers.IntegerField()
    files_reused = serializers.IntegerField(help_text="Unchanged files whose previous chunks were reused unread.")
    files_special = serializers.IntegerField(help_text="Sockets, FIFOs and devices: skipped.")
    files_unreadable = serializers.IntegerField()
    rate_bytes_per_second = serializers.SerializerMethodField(help_text="Bytes done / seconds since copying began.")
    eta_seconds = serializers.SerializerMethodField(
        help_text="Bytes left / rate; null until the total is final and 3 s of copying have passed."
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error_code = serializers.CharField()
    error_message = serializers.CharField()

    def get_url(self, backup: Backup) -> str:
        return reverse("backups:backup", kwargs={"backup_id": backup.pk})

    def get_rate_bytes_per_second(self, backup: Backup) -> float | None:
        return backup_rate(backup)

    def get_eta_seconds(self, backup: Backup) -> float | None:
        return backup_eta_seconds(backup)


class FileOutputSerializer(serializers.Serializer[Any]):
    path = serializers.SerializerMethodField(help_text="As text; bytes that are not UTF-8 become U+FFFD.")
    path_b64 = serializers.SerializerMethodField(help_text="The exact bytes of the path, base64.")
    kind = serializers.ChoiceField(choices=FileEntry.Kind.choices)
    size = serializers.IntegerField()
    mode = serializers.IntegerField()
    mtime_ns = serializers.IntegerField()
    sha256 = serializers.CharField()
    link_target_b64 = serializers.SerializerMethodField()
    error = serializers.CharField()

    def get_path(self, entry: FileEntry) -> str:
        return path_text(bytes(entry.path))

    def get_path_b64(self, entry: FileEntry) -> str:
        return path_b64(bytes(entry.path))

    def get_link_target_b64(self, entry: FileEntry) -> str | None:
        return None if entry.link_target is None else path_b64(bytes(entry.link_target))


JOB_ROUTES = {Job.Kind.RESTORE: "backups:restore-job", Job.Kind.VERIFY: "backups:verify-job"}


class JobOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    backup_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    state = serializers.ChoiceField(choices=Job.State.choices)
    items_done = serializers.IntegerField(help_text="Restore: paths written; verify: packs checked.")
    bytes_done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    problems = serializers.ListField(child=serializers.DictField(), help_text="Verify: bad chunks and their files.")
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, job: Job) -> str:
        return reverse(JOB_ROUTES[Job.Kind(job.kind)], kwargs={"job_id": job.pk})
