from django.urls import path

from backups.apis import backups, diffs, files, jobs, policy, prunes

app_name = "backups"

urlpatterns = [
    path("backups", backups.BackupListApi.as_view(), name="backups"),
    path("backups/<int:backup_id>", backups.BackupDetailApi.as_view(), name="backup"),
    path("backups/<int:backup_id>/cancel", backups.BackupCancelApi.as_view(), name="cancel"),
    path("backups/<int:backup_id>/files", files.SnapshotFilesApi.as_view(), name="files"),
    path("backups/<int:backup_id>/file", files.SnapshotFileByBytesApi.as_view(), name="file-by-bytes"),
    path("backups/<int:backup_id>/files/<path:path>", files.SnapshotFileDownloadApi.as_view(), name="file"),
    path("backups/<int:backup_id>/exports/<str:name>", files.SnapshotExportDownloadApi.as_view(), name="export"),
    path("backups/<int:backup_id>/diff/<int:other_id>", diffs.BackupDiffApi.as_view(), name="diff"),
    path("backups/<int:backup_id>/restore", jobs.BackupRestoreApi.as_view(), name="restore"),
    path("backups/<int:backup_id>/verify", jobs.BackupVerifyApi.as_view(), name="verify"),
    path("backup-policy", policy.BackupPolicyApi.as_view(), name="policy"),
    path("prunes", prunes.PruneListApi.as_view(), name="prunes"),
    path("prunes/<int:prune_id>", prunes.PruneDetailApi.as_view(), name="prune"),
    path("restores/<int:job_id>", jobs.RestoreJobApi.as_view(), name="restore-job"),
    path("verifications/<int:job_id>", jobs.VerifyJobApi.as_view(), name="verify-job"),
]
