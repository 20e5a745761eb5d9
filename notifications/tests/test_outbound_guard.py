"""The outbound client connects only to public addresses (or the allowance), checked at
connect time on the addresses DNS answered. DNS is an injected resolver: no test traffic
leaves loopback (the ``_loopback_only`` fixture fails any test whose process tries)."""

from __future__ import annotations

import pytest

from app import outbound_http

REFUSED = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "127.0.0.2",
    "0.0.0.0",  # noqa: S104
    "::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "fc00::1",
    "fe80::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_post_refuses_a_name_resolving_to_a_non_public_address(resolver, address: str) -> None:
    resolver({"hooks.example": [address]})

    with pytest.raises(outbound_http.PrivateAddressError):
        outbound_http.post("https://hooks.example/in", body=b"{}", headers={})


def test_one_refused_answer_among_several_refuses_the_endpoint_at_creation(resolver) -> None:
    resolver({"hooks.example": ["93.184.216.34", "10.0.0.1"]})

    with pytest.raises(outbound_http.PrivateAddressError):
        outbound_http.host_check("hooks.example", 443)


def test_a_public_answer_passes_the_check(resolver) -> None:
    resolver({"hooks.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})

    outbound_http.host_check("hooks.example", 443)  # no exception; nothing was connected to


def test_loopback_is_reachable_only_through_the_allowance(settings, resolver, endpoint_server) -> None:
    server = endpoint_server()
    resolver({"localhost": ["127.0.0.1"]})
    url = server.url().replace("127.0.0.1", "localhost")

    assert outbound_http.post(url, body=b"{}", headers={}).status == 200

    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(outbound_http.PrivateAddressError):
        outbound_http.post(url, body=b"{}", headers={})
    assert len(server.received) == 1


def test_the_check_runs_at_connect_time_on_a_changed_answer(resolver, endpoint_server) -> None:
    """Validated while public, later resolving to a private address: refused when sending."""
    resolver({"hooks.example": ["93.184.216.34"]})
    outbound_http.host_check("hooks.example", 80)
    resolver({"hooks.example": ["169.254.169.254"]})

    with pytest.raises(outbound_http.PrivateAddressError):
        outbound_http.post("http://hooks.example/in", body=b"{}", headers={})


def test_redirects_are_not_followed_and_the_body_is_cut(endpoint_server) -> None:
    from notifications.tests.conftest import Reply

    server = endpoint_server()
    server.replies.append(Reply(status=302, headers={"Location": server.url("/elsewhere")}))
    server.replies.append(Reply(status=200, body=b"x" * 100_000))

    redirected = outbound_http.post(server.url(), body=b"{}", headers={})
    large = outbound_http.post(server.url(), body=b"{}", headers={})

    assert redirected.status == 302
    assert [request.path for request in server.received] == ["/hook", "/hook"]
    assert len(large.body) == outbound_http.BODY_LIMIT
    assert large.truncated
    assert "Storefabric" in server.received[0].headers["user-agent"]


def test_a_slow_answer_times_out_at_the_total_deadline(endpoint_server) -> None:
    from notifications.tests.conftest import Reply

    server = endpoint_server()
    server.replies.append(Reply(delay=3.0))

    with pytest.raises(outbound_http.OutboundError) as raised:
        outbound_http.post(server.url(), body=b"{}", headers={}, total_timeout=0.5)
    assert raised.value.kind == "timeout"
