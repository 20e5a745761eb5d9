"""Our signatures verified by an independent Standard Webhooks implementation (PyPI's
``standardwebhooks``), at real time, for one secret and for two during a rotation."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifications.secrets import SECRET_PREFIX, secret_decrypt, secret_encrypt, secret_generate
from notifications.signing import signed_headers

BODY = b'{"id":"msg_1","type":"ping","data":{}}'


def test_a_signed_message_verifies_with_the_standard_library() -> None:
    secret = secret_generate()
    headers = signed_headers(secrets=[secret], message_id="msg_1", timestamp=int(time.time()), body=BODY)

    assert secret.startswith(SECRET_PREFIX)
    assert Webhook(secret).verify(BODY, headers) == {"id": "msg_1", "type": "ping", "data": {}}


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    secret = secret_generate()
    headers = signed_headers(secrets=[secret], message_id="msg_1", timestamp=int(time.time()), body=BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"ping", b"pong"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_generate()).verify(BODY, headers)


def test_during_rotation_both_signatures_are_sent_and_either_secret_verifies() -> None:
    old, new = secret_generate(), secret_generate()
    headers = signed_headers(secrets=[new, old], message_id="msg_2", timestamp=int(time.time()), body=BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_secrets_are_stored_encrypted_and_come_back() -> None:
    secret = secret_generate()
    stored = secret_encrypt(secret)

    assert secret not in stored
    assert secret_decrypt(stored) == secret
