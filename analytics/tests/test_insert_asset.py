"""The JavaScript insert: built from its source, small, served with the right caching."""

from __future__ import annotations

import gzip

import pytest

from analytics.insert import insert_asset
from analytics.jsmin import MINIFIED, SOURCE, MinifyError, build, minify, source_digest

SIZE_BUDGET = 6 * 1024


def test_the_committed_minified_file_is_the_build_of_the_current_source():
    source = SOURCE.read_text()
    committed = MINIFIED.read_text()
    assert source_digest(source) in committed.splitlines()[0], "run: python manage.py build_insert"
    assert committed == build(source)


def test_minified_and_gzipped_insert_fits_the_budget():
    assert len(gzip.compress(MINIFIED.read_bytes(), 9)) <= SIZE_BUDGET


def test_minifier_keeps_strings_and_separates_words():
    assert (
        minify("var a = 'x  // y';  // note\nreturn  a + +b; /* c */ typeof x")
        == "var a='x  // y';return a+ +b;typeof x"
    )


@pytest.mark.parametrize("source", ["x = /ab+c/.test(y);", "var s = `t`;", "var s = 'open"])
def test_minifier_refuses_what_it_would_break(source):
    with pytest.raises(MinifyError):
        minify(source)


def test_stable_url_has_short_cache_etag_and_gzip(client):
    response = client.get("/v1/js/storefabric.js", HTTP_ACCEPT_ENCODING="gzip, br")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"
    assert gzip.decompress(response.content) == MINIFIED.read_bytes()
    again = client.get("/v1/js/storefabric.js", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again.content == b""


def test_plain_copy_for_clients_without_gzip(client):
    response = client.get("/v1/js/storefabric.js")
    assert "Content-Encoding" not in response
    assert response.content == MINIFIED.read_bytes()


def test_hashed_url_is_cached_for_a_year_and_unknown_hashes_are_404(client):
    asset = insert_asset()
    current = client.get("/v1/js/storefabric.js")
    assert current["X-Storefabric-Insert"] == asset.hashed_name
    hashed = client.get(f"/v1/js/{asset.hashed_name}")
    assert hashed.status_code == 200
    assert hashed["Cache-Control"] == "public, max-age=31536000, immutable"
    assert hashed.content == current.content
    missing = client.get("/v1/js/storefabric.0123456789abcdef.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
