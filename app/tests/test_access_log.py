"""gunicorn's access log: one line per request, in LOG_FORMAT, with the request id and no secret keys.

Read from the output of a real gunicorn (production's ``app/gunicorn_conf.py``), the only
place the access line is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from app.access_log import url_mask
from app.tenancy.keys import key_prefix
from conftest import Tenant
from workers.testing import WebServer, wait_until


def access_lines(web: WebServer, count: int) -> list[dict[str, object]]:
    """The JSON access lines once ``count`` of them are written (gunicorn writes after the answer)."""
    wait_until(lambda: len(web.process.events("http_access")) >= count, timeout=10, message="no access line")
    return web.process.events("http_access")


def test_each_request_writes_one_json_access_line_with_its_request_id(web_server: Callable[..., WebServer]) -> None:
    web = web_server()

    web.send("GET", "/healthz", headers={"X-Request-ID": "trace-ok-1"})
    _, headers, _ = web.send("GET", "/v1/no-such-thing")

    lines = access_lines(web, 2)
    assert len(lines) == 2
    ok, missing = lines
    assert (ok["method"], ok["path"], ok["status"], ok["request_id"]) == ("GET", "/healthz", 200, "trace-ok-1")
    assert (missing["status"], missing["request_id"]) == (404, headers["x-request-id"])
    assert {"bytes", "duration_ms", "timestamp", "level"} <= ok.keys()


def test_the_access_line_follows_log_format_console(web_server: Callable[..., WebServer]) -> None:
    web = web_server(extra_env={"LOG_FORMAT": "console"})

    web.send("GET", "/healthz", headers={"X-Request-ID": "trace-console-1"})

    wait_until(lambda: "trace-console-1" in web.process.output(), timeout=10, message="no access line")
    (line,) = [line for line in web.process.output().splitlines() if "http_access" in line]
    assert "request_id=trace-console-1" in line
    assert "status=200" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_secret_key_in_the_url_is_refused_and_never_written_to_the_log(
    web_server: Callable[..., WebServer], alice: Tenant
) -> None:
    web = web_server()
    secret = alice.secret_key

    refused = [
        web.send("GET", f"/v1/prices?skus=A&key={secret}")[0],
        web.send("GET", f"/v1/prices?skus=A&key={alice.publishable_key}&key={secret}")[0],
        web.send("GET", f"/v1/products/{secret}")[0],
    ]

    assert refused[:2] == [400, 400]
    lines = access_lines(web, 3)
    assert secret not in web.process.output()
    assert secret[len(key_prefix(secret)) :] not in web.process.output()
    assert lines[0]["path"] == f"/v1/prices?skus=A&key={key_prefix(secret)}…"
    assert lines[2]["path"] == f"/v1/products/{key_prefix(secret)}…"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("/v1/prices?skus=A&key=pk_abcdefghijklmnop", "/v1/prices?skus=A&key=pk_abcdefgh…"),
        ("/v1/prices?key=sk_%s&key=pk_zz" % ("s" * 32), "/v1/prices?key=sk_ssssssss…&key=pk_zz…"),
        ("/v1/prices?key=sk%%5F%s" % ("s" * 32), "/v1/prices?key=sk%5Fssssss…"),
        ("/v1/rules?note=sk_%s" % ("x" * 32), "/v1/rules?note=sk_xxxxxxxx…"),
        ("/v1/prices?skus=sk_12,monkey&monkey=key", "/v1/prices?skus=sk_12,monkey&monkey=key"),
    ],
)
def test_url_mask_cuts_every_key_value_and_secret_token_to_its_prefix(url: str, masked: str) -> None:
    assert url_mask(url) == masked
