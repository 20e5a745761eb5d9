"""The HTTP API: start (second click), progress, cancel, delete, files, download, restore input, tenancy."""

from __future__ import annotations

import base64

import pytest

from backups.models import Backup, Job
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain

NON_UTF8 = b"na\xefve-\xff.bin"


def backup_done(tenant, backup_dirs) -> dict:
    """A finished backup of a small tree, through the API and the in-process pipeline."""
    root = source_of(backup_dirs, tenant.retailer.id)
    write(root, "docs/readme.txt", b"read me\n")
    write(root, b"docs/" + NON_UTF8, b"\x00\x01 raw")
    write(root, "top.txt", b"top")
    response = tenant.client().post("/v1/backups")
    assert response.status_code == 202
    outbox_drain()
    body = tenant.client().get(response["Location"]).json()
    assert body["state"] == "done", body
    return body


def test_a_second_click_answers_the_running_backup(alice, backup_dirs) -> None:
    first = alice.client().post("/v1/backups")
    second = alice.client().post("/v1/backups")

    assert first.status_code == 202
    assert first["Location"] == f"/v1/backups/{first.json()['id']}"
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second["Location"] == first["Location"]
    assert Backup.objects.filter(retailer=alice.retailer).count() == 1


def test_progress_and_list(alice, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)

    assert body["files_done"] == body["files_total"] == 5  # docs/, 3 files, the catalog export
    assert body["total_final"] is True
    assert body["eta_seconds"] is None
    listing = alice.client().get("/v1/backups?page_size=1").json()
    assert [row["id"] for row in listing["results"]] == [body["id"]]
    assert alice.client().get("/v1/backups?page_size=0").status_code == 400


def test_cancel_a_running_backup_then_409_not_running(alice, backup_dirs) -> None:
    started = alice.client().post("/v1/backups").json()

    cancelled = alice.client().post(f"/v1/backups/{started['id']}/cancel")
    again = alice.client().post(f"/v1/backups/{started['id']}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_running"
    outbox_drain()  # its queued slices find it cancelled and do nothing
    assert Backup.objects.get(pk=started["id"]).state == Backup.State.CANCELLED
    assert alice.client().post("/v1/backups").status_code == 202  # a new one may start


def test_delete_is_409_while_running_and_204_after(alice, backup_dirs) -> None:
    started = alice.client().post("/v1/backups").json()

    running = alice.client().delete(f"/v1/backups/{started['id']}")
    outbox_drain()
    done = alice.client().delete(f"/v1/backups/{started['id']}")

    assert running.status_code == 409
    assert running.json()["error"]["code"] == "backup_running"
    assert done.status_code == 204
    assert alice.client().get(f"/v1/backups/{started['id']}").status_code == 404


def test_files_listing_gives_text_and_exact_bytes_and_paginates(alice, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)
    url = f"/v1/backups/{body['id']}/files"

    docs = alice.client().get(url, {"prefix": "docs"}).json()
    first_page = alice.client().get(url, {"page_size": 2}).json()
    second_page = alice.client().get(first_page["next"]).json()

    paths = {base64.b64decode(row["path_b64"]) for row in docs["results"]}
    assert paths == {b"docs", b"docs/readme.txt", b"docs/" + NON_UTF8}
    assert "na\ufffdve-\ufffd.bin" in {row["path"].removeprefix("docs/") for row in docs["results"]}
    assert len(first_page["results"]) == 2
    assert [row["path"] for row in second_page["results"]][-1] == "top.txt"


def test_download_streams_the_stored_bytes_by_text_or_exact_bytes(alice, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)

    # Each download is read to its end, as a client does: an open one holds a download slot.
    by_text = b"".join(alice.client().get(f"/v1/backups/{body['id']}/files/docs/readme.txt").streaming_content)
    path_b64 = base64.b64encode(b"docs/" + NON_UTF8).decode()
    by_bytes = b"".join(alice.client().get(f"/v1/backups/{body['id']}/file", {"path_b64": path_b64}).streaming_content)
    missing = alice.client().get(f"/v1/backups/{body['id']}/files/docs/nope.txt")
    export = alice.client().get(f"/v1/backups/{body['id']}/exports/catalog")

    assert by_text == b"read me\n"
    assert by_bytes == b"\x00\x01 raw"
    assert missing.status_code == 404
    assert export.status_code == 200


@pytest.mark.parametrize(
    "field",
    [
        {"target": "../escape"},
        {"target": "/etc"},
        {"target": "ok/../../x"},
        {"prefix": "../x"},
        {"prefix": "/abs"},
        {"prefix_b64": base64.b64encode(b"a\x00b").decode()},
        {"prefix_b64": "not base64!"},
        {"existing": "merge"},
    ],
)
def test_restore_refuses_paths_that_leave_the_target(alice, backup_dirs, field) -> None:
    body = backup_done(alice, backup_dirs)

    response = alice.client().post(f"/v1/backups/{body['id']}/restore", field, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"validation_failed", "invalid_characters"}
    assert not Job.objects.exists()


def test_restore_with_nul_in_target_is_400(alice, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)

    response = alice.client().post(f"/v1/backups/{body['id']}/restore", {"target": "a\x00b"}, format="json")

    assert response.status_code == 400


def test_restore_and_verify_of_an_unfinished_backup_are_409(alice, backup_dirs) -> None:
    started = alice.client().post("/v1/backups").json()
    alice.client().post(f"/v1/backups/{started['id']}/cancel")

    restore = alice.client().post(f"/v1/backups/{started['id']}/restore", {}, format="json")
    verify = alice.client().post(f"/v1/backups/{started['id']}/verify")

    assert restore.status_code == verify.status_code == 409
    assert verify.json()["error"]["code"] == "backup_not_done"


def test_another_retailers_backup_is_404_everywhere(alice, bob, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)
    restore = alice.client().post(f"/v1/backups/{body['id']}/restore", {"target": "t"}, format="json")
    assert restore.status_code == 202
    base = f"/v1/backups/{body['id']}"
    client = bob.client()

    answers = [
        client.get(base),
        client.delete(base),
        client.post(f"{base}/cancel"),
        client.get(f"{base}/files"),
        client.get(f"{base}/files/top.txt"),
        client.get(f"{base}/file", {"path_b64": base64.b64encode(b"top.txt").decode()}),
        client.get(f"{base}/exports/catalog"),
        client.post(f"{base}/restore", {"target": "mine"}, format="json"),
        client.post(f"{base}/verify"),
        client.get(restore["Location"]),
    ]

    assert [response.status_code for response in answers] == [404] * len(answers)
    assert client.get("/v1/backups").json()["results"] == []
    assert Backup.objects.get(pk=body["id"]).state == Backup.State.DONE


def test_restore_job_through_the_api(alice, backup_dirs) -> None:
    body = backup_done(alice, backup_dirs)

    accepted = alice.client().post(
        f"/v1/backups/{body['id']}/restore", {"prefix": "docs", "target": "d"}, format="json"
    )
    outbox_drain()
    job = alice.client().get(accepted["Location"]).json()

    assert accepted.status_code == 202
    assert accepted["Location"] == f"/v1/restores/{accepted.json()['id']}"
    assert job["state"] == "done", job
    target = backup_dirs["restore"] / str(alice.retailer.id) / "d"
    assert (target / "docs" / "readme.txt").read_bytes() == b"read me\n"
    assert not (target / "top.txt").exists()


def test_secret_key_required(alice, anon_client, backup_dirs) -> None:
    assert anon_client.post("/v1/backups").status_code == 401
