"""The server over real HTTP: headers, MIME types, caching, 404s, path traversal, /api/models."""

from __future__ import annotations

import http.client
import json

import pytest

from server import pins


def fetch(server, path, headers=None, method="GET"):
    """Raw request (no URL normalisation: traversal attempts reach the server as written)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


PYODIDE = f"/assets/pyodide-{pins.PYODIDE_VERSION}/"
ORT = f"/assets/ort-{pins.ORT_WEB_VERSION}/"


def test_healthz(live_server):
    status, headers, body = fetch(live_server, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "assets_ready": True, "missing_assets": []}


def test_pages_are_cross_origin_isolated(live_server):
    status, headers, body = fetch(live_server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    assert headers["x-content-type-options"] == "nosniff"
    assert b"clip-web" in body


@pytest.mark.parametrize(
    "path, mime",
    [
        (ORT + "ort-wasm-simd-threaded.wasm", "application/wasm"),
        (ORT + "ort.wasm.min.mjs", "text/javascript"),
        (PYODIDE + "pyodide.mjs", "text/javascript"),
        (PYODIDE + "pyodide.asm.wasm", "application/wasm"),
        (PYODIDE + "pyodide.asm.js", "text/javascript"),
        (PYODIDE + "clip-web-lock.json", "application/json"),
        ("/js/runtime/runtime.js", "text/javascript"),
        ("/assets/vocab/bpe_simple_vocab_16e6.txt.gz", "application/gzip"),
    ],
)
def test_mime_types(live_server, path, mime):
    status, headers, body = fetch(live_server, path, method="HEAD")
    assert status == 200, path
    assert headers["content-type"].split(";")[0] == mime
    assert "content-encoding" not in headers


def test_assets_are_embeddable_and_cached_forever(live_server):
    status, headers, _ = fetch(live_server, ORT + "ort-wasm-simd-threaded.wasm", method="HEAD")
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = headers["etag"]
    status, headers, body = fetch(live_server, ORT + "ort-wasm-simd-threaded.wasm", {"If-None-Match": etag})
    assert status == 304 and body == b""


def test_pyapp_wheel_and_lock_are_revalidated(live_server):
    lock = json.loads(fetch(live_server, PYODIDE + "clip-web-lock.json")[2])
    wheel = lock["packages"]["pyapp"]["file_name"]
    status, headers, body = fetch(live_server, PYODIDE + wheel)
    assert status == 200
    assert headers["cache-control"] == "no-cache" and headers["etag"]
    import hashlib

    assert hashlib.sha256(body).hexdigest() == lock["packages"]["pyapp"]["sha256"]
    assert set(lock["packages"]) == {"numpy", "pillow", "wcwidth", "ftfy", "pyapp"}  # exactly what pyapp needs


@pytest.mark.parametrize(
    "path",
    [
        "/no-such-page.html",
        "/assets/",
        "/assets/downloads/pyodide-0.27.7.tgz",  # the raw downloads are not served
        "/../pyproject.toml",
        "/js/../../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/assets/vocab/..%2f..%2fpyproject.toml",
        PYODIDE + "../../server/app.py",
        "/models/../pyproject.toml",
        "/models/%2e%2e/%2e%2e/pyproject.toml",
    ],
)
def test_unknown_and_escaping_paths_404(live_server, path):
    status, _, body = fetch(live_server, path)
    assert status == 404, (path, body[:200])
    assert b"[build-system]" not in body and b"FastAPI" not in body


def test_api_models_lists_presets_and_local(live_server, tiny_model_dir):
    status, headers, body = fetch(live_server, "/api/models")
    assert status == 200
    listing = json.loads(body)
    ids = [m["id"] for m in listing["models"]]
    for preset in ("rocca-vit-b-32-fp32", "rocca-vit-b-32-uint8", "xenova-vit-b-32-fp32", "xenova-vit-b-32-quantized"):
        assert preset in ids
    assert listing["default"] == "tiny-reference"  # a local folder becomes the default
    tiny = next(m for m in listing["models"] if m["id"] == "tiny-reference")
    assert tiny["origin"] == "local"
    assert tiny["image"]["url"] == "/models/tiny/image.onnx"
    status, headers, body = fetch(live_server, tiny["image"]["url"])
    assert status == 200 and len(body) == tiny["image"]["bytes"]
    rocca = next(m for m in listing["models"] if m["id"] == "rocca-vit-b-32-fp32")
    assert rocca["image"]["url"].startswith("https://huggingface.co/rocca/openai-clip-js/resolve/main/")
    assert rocca["text"]["input_dtype"] == "int32"
    xenova = next(m for m in listing["models"] if m["id"] == "xenova-vit-b-32-fp32")
    assert (xenova["image"]["input"], xenova["text"]["input"]) == ("pixel_values", "input_ids")


def test_request_log_records_requests(live_server):
    fetch(live_server, "/healthz?probe=1")
    assert any(r["path"] == "/healthz" and r["query"] == "probe=1" and r["status"] == 200 for r in live_server.requests())


@pytest.mark.parametrize("path, exported", [("/js/clip.js", "createClip"), ("/widget.js", "ClipWidget")])
def test_public_module_urls_stay(live_server, path, exported):
    """Other sites import these two URLs: a layout change inside web/ must not move them."""
    status, headers, body = fetch(live_server, path)
    assert status == 200, path
    assert headers["content-type"].split(";")[0] == "text/javascript"
    assert headers["access-control-allow-origin"] == "*"
    assert exported.encode() in body


def test_embed_url_serves_the_widget_page(live_server):
    status, headers, body = fetch(live_server, "/embed?mode=text")
    assert status == 200
    assert headers["content-type"].split(";")[0] == "text/html"
    assert b"<clip-widget>" in body and b"js/pages/embed-page.js" in body
