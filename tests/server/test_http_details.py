"""HTTP details of every kind of URL: HEAD answers wherever GET does (same status and headers, no
body), no Referer leaves our pages, and framing is stated (the widget anyone may frame, the rest
only this server)."""

from __future__ import annotations

import pytest

from server import pins
from test_http import fetch

PYODIDE = f"/assets/pyodide-{pins.PYODIDE_VERSION}/"
URLS = ["/", "/text.html", "/embed", "/healthz", "/api/runtime", "/api/models", "/js/clip.js",
        PYODIDE + "pyodide.mjs", PYODIDE + "clip-web-lock.json", "/assets/vocab/bpe_simple_vocab_16e6.txt.gz",
        "/models/tiny/manifest.json"]
SAME = ("content-type", "content-length", "cache-control", "etag", "content-security-policy", "referrer-policy")


@pytest.mark.parametrize("path", URLS)
def test_head_answers_wherever_get_does(live_server, path):
    get_status, get_headers, get_body = fetch(live_server, path)
    head_status, head_headers, head_body = fetch(live_server, path, method="HEAD")
    assert get_status == head_status == 200
    assert head_body == b"" and len(get_body) > 0
    for name in SAME:
        if name == "content-length" and name not in get_headers:
            continue  # a streamed GET
        assert head_headers.get(name) == get_headers.get(name), name


@pytest.mark.parametrize("path", URLS)
def test_no_referrer_leaves_our_pages(live_server, path):
    assert fetch(live_server, path)[1]["referrer-policy"] == "no-referrer"


def test_the_widget_may_be_framed_by_any_site_and_pages_only_by_ours(live_server):
    # Each page's full policy is in test_content_security_policy.py; framing is its last directive.
    assert fetch(live_server, "/embed?model=tiny-reference")[1]["content-security-policy"].endswith("; frame-ancestors *")
    for path in ("/", "/image.html", "/text.html", "/search.html"):
        assert fetch(live_server, path)[1]["content-security-policy"].endswith("; frame-ancestors 'self'"), path
    # Everything else states framing only, as before pages had a full policy.
    for path in ("/api/models", "/js/clip.js", "/healthz"):
        assert fetch(live_server, path)[1]["content-security-policy"] == "frame-ancestors 'self'", path


def test_head_of_an_unknown_path_is_404(live_server):
    assert fetch(live_server, "/no-such-page.html", method="HEAD")[0] == 404
