"""Operators list, inspect and replay dead letters: command, staff API and admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from workers.models import DeadLetter, OutboxMessage
from workers.services import deadletter_record

pytestmark = pytest.mark.django_db


def _letter(key: str = "order-1", task: str = "notifications.email_drain") -> DeadLetter:
    return deadletter_record(
        task_name=task,
        task_id=f"task-{key}",
        queue="email",
        kwargs={"idempotency_key": key, "notification_id": 9, "retailer_id": 3},
        exception="TransientError: SMTP 451",
        traceback="Traceback (most recent call last): ...",
        attempts=6,
    )


def _client(*, staff: bool) -> Client:
    user = get_user_model().objects.create_user(username=f"staff-{staff}", password=None, is_staff=staff)
    client = Client()
    client.force_login(user)
    return client


def test_failing_again_updates_the_one_dead_letter_of_that_message():
    first = _letter()
    first.status = DeadLetter.Status.REPLAYED
    first.save()

    again = _letter()

    assert again.pk == first.pk
    assert (again.failures, again.attempts, again.status) == (2, 12, DeadLetter.Status.OPEN)
    assert again.retailer_id == 3


def test_command_lists_shows_and_replays_through_the_outbox():
    letter = _letter()
    out = StringIO()

    call_command("deadletters", "list", stdout=out)
    call_command("deadletters", "show", str(letter.pk), stdout=out)
    call_command("deadletters", "replay", str(letter.pk), stdout=out)

    text = out.getvalue()
    assert "notifications.email_drain order-1 TransientError: SMTP 451" in text
    assert '"notification_id": 9' in text
    assert f"{letter.pk}: queued for replay" in text
    row = OutboxMessage.objects.get()
    assert row.task_name == "notifications.email_drain"
    assert row.kwargs["idempotency_key"] == "order-1"  # the replay passes the original barrier
    letter.refresh_from_db()
    assert (letter.status, letter.replays, letter.last_replayed_by) == ("replayed", 1, "manage.py deadletters")
    with pytest.raises(CommandError):
        call_command("deadletters", "replay", str(letter.pk), "999999", stdout=out, stderr=StringIO())


def test_ops_api_is_for_staff_sessions_only():
    letter = _letter()

    anonymous = Client().get("/ops/deadletters")
    not_staff = _client(staff=False)
    shopper = not_staff.get(f"/ops/deadletters/{letter.pk}")
    replay = not_staff.post(f"/ops/deadletters/{letter.pk}/replay")

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert shopper.status_code == 403
    assert replay.status_code == 403
    assert not OutboxMessage.objects.exists()


def test_ops_api_lists_filters_inspects_and_replays_once():
    letter = _letter()
    _letter(key="other", task="backups.chunk_copy")
    staff = _client(staff=True)

    listed = staff.get("/ops/deadletters", {"task": "notifications.email_drain", "status": "open"}).json()["results"]
    shown = staff.get(f"/ops/deadletters/{letter.pk}").json()
    replayed = staff.post(f"/ops/deadletters/{letter.pk}/replay")
    twice = staff.post(f"/ops/deadletters/{letter.pk}/replay")

    assert [row["id"] for row in listed] == [letter.pk]
    assert shown["kwargs"] == {"idempotency_key": "order-1", "notification_id": 9, "retailer_id": 3}
    assert shown["traceback"].startswith("Traceback")
    assert replayed.status_code == 202
    assert replayed.json()["status"] == "replayed"
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "conflict"
    assert OutboxMessage.objects.count() == 1


def test_ops_api_refuses_bad_filters_and_unknown_ids_with_clear_4xx():
    staff = _client(staff=True)

    bad = staff.get("/ops/deadletters", {"status": "exploded", "limit": "0"})
    missing = staff.get("/ops/deadletters/424242")
    missing_replay = staff.post("/ops/deadletters/424242/replay")

    assert bad.status_code == 400
    assert {row["field"] for row in bad.json()["error"]["details"]} == {"status", "limit"}
    assert missing.status_code == 404
    assert missing_replay.status_code == 404


def test_admin_action_replays_the_selected_open_letters():
    letter = _letter()
    admin = get_user_model().objects.create_superuser(username="root", password=None, email="r@example.com")
    client = Client()
    client.force_login(admin)

    page = client.get("/admin/workers/deadletter/")
    response = client.post(
        "/admin/workers/deadletter/", {"action": "replay", "_selected_action": [str(letter.pk)]}, follow=True
    )

    assert page.status_code == 200
    assert b"order-1" in page.content
    assert response.status_code == 200
    assert b"1 queued for replay" in response.content
    assert OutboxMessage.objects.filter(idempotency_key=f"replay:{letter.pk}:1").exists()
