"""The server over real HTTP: headers, MIME types, caching, 404s, path traversal, /api/models."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import shutil

import brotli
import pytest
from fastapi.testclient import TestClient

from helpers import REPO_ROOT
from server import pins
from server.app import create_app
from server.assets import pyodide_dir
from server.models import list_models
from server.settings import Settings


def fetch(server, path, headers=None, method="GET"):
    """Raw request (no URL normalisation: traversal attempts reach the server as written), with
    only the headers given (http.client would add `Accept-Encoding: identity` of its own)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
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


def test_without_a_local_folder_the_default_is_the_exact_preset_that_takes_the_real_text_length(tmp_path):
    listing = list_models(Settings(assets_dir=tmp_path, models_dir=None))
    default = next(m for m in listing["models"] if m["id"] == listing["default"])
    assert default["id"] == "xenova-vit-b-32-fp32" and default["origin"] == "preset"
    assert default["variant"] == "fp32" and default["image"]["input_dtype"] == "float32"
    assert default["text"]["dynamic_sequence"] is True  # rocca's fp32 text model is fixed at 77


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


CHROMIUM_ACCEPT = "gzip, deflate, br, zstd"  # what Chromium offers to localhost
COMPRESSED = [
    PYODIDE + "pyodide.mjs",
    PYODIDE + "pyodide.asm.js",
    PYODIDE + "pyodide.asm.wasm",
    ORT + "ort.wasm.min.mjs",
    ORT + "ort-wasm-simd-threaded.mjs",
    ORT + "ort-wasm-simd-threaded.wasm",
]


def on_disk(assets_dir, path):
    return (assets_dir / path.removeprefix("/assets/")).read_bytes()


@pytest.mark.parametrize("coding, accept, decode", [
    ("br", CHROMIUM_ACCEPT, brotli.decompress),
    ("gzip", "gzip, deflate", gzip.decompress),  # browsers over plain HTTP to another host
])
@pytest.mark.parametrize("path", COMPRESSED)
def test_runtime_files_are_sent_compressed(live_server, assets_dir, path, coding, accept, decode):
    _, plain_headers, plain = fetch(live_server, path)
    assert "content-encoding" not in plain_headers and plain == on_disk(assets_dir, path)
    status, headers, body = fetch(live_server, path, {"Accept-Encoding": accept})
    assert status == 200
    assert headers["content-encoding"] == coding
    assert decode(body) == plain
    assert int(headers["content-length"]) == len(body) < len(plain) // 2
    assert headers["content-type"] == plain_headers["content-type"]  # the file's type, not br's
    assert headers["vary"] == plain_headers["vary"] == "Accept-Encoding"
    assert headers["cache-control"] == plain_headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["access-control-expose-headers"] == "Content-Length, Content-Encoding, Content-Range, ETag"
    assert headers["etag"] != plain_headers["etag"]
    # Each answer revalidates with its own ETag; the other one's ETag gets the full answer.
    for etag, ask in ((headers["etag"], {"Accept-Encoding": accept}), (plain_headers["etag"], {})):
        status, not_modified, body = fetch(live_server, path, {"If-None-Match": etag, **ask})
        assert (status, body, not_modified["etag"], not_modified["vary"]) == (304, b"", etag, "Accept-Encoding")
    status, headers, body = fetch(live_server, path, {"If-None-Match": plain_headers["etag"], "Accept-Encoding": accept})
    assert status == 200 and headers["content-encoding"] == coding and decode(body) == plain


def test_head_of_a_compressed_file_is_its_get_without_body(live_server):
    path = PYODIDE + "pyodide.asm.wasm"
    ask = {"Accept-Encoding": CHROMIUM_ACCEPT}
    _, got, body = fetch(live_server, path, ask)
    status, head, head_body = fetch(live_server, path, ask, method="HEAD")
    assert status == 200 and head_body == b""
    assert {k: head[k] for k in ("content-encoding", "content-length", "content-type", "etag", "vary")} == \
        {k: got[k] for k in ("content-encoding", "content-length", "content-type", "etag", "vary")}
    assert int(head["content-length"]) == len(body)


@pytest.mark.parametrize("accept", ["identity", "br;q=0, gzip;q=0", "deflate, zstd", "*;q=0"])
def test_no_compression_unless_accepted(live_server, assets_dir, accept):
    path = ORT + "ort.wasm.min.mjs"
    status, headers, body = fetch(live_server, path, {"Accept-Encoding": accept})
    assert status == 200 and "content-encoding" not in headers
    assert body == on_disk(assets_dir, path)


def test_a_refused_coding_falls_back_to_the_next(live_server):
    status, headers, body = fetch(live_server, ORT + "ort.wasm.min.mjs", {"Accept-Encoding": "br;q=0, gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"


def test_range_requests_get_identity_bytes(live_server, assets_dir):
    path = ORT + "ort-wasm-simd-threaded.wasm"
    status, headers, body = fetch(live_server, path, {"Accept-Encoding": CHROMIUM_ACCEPT, "Range": "bytes=100-199"})
    assert status == 206 and "content-encoding" not in headers
    assert body == on_disk(assets_dir, path)[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(on_disk(assets_dir, path))}"


def test_vocab_wheels_stdlib_models_and_pages_are_never_encoded(live_server, assets_dir, tiny_model_dir):
    ask = {"Accept-Encoding": CHROMIUM_ACCEPT}
    # The vocab is a gzip file the page unzips itself; a Content-Encoding would make the browser
    # unzip it on the way, and the page would get text where it expects gzip.
    vocab = "/assets/vocab/bpe_simple_vocab_16e6.txt.gz"
    status, headers, body = fetch(live_server, vocab, ask)
    assert (status, headers["content-type"], "content-encoding" in headers) == (200, "application/gzip", False)
    assert body == on_disk(assets_dir, vocab)
    # Wheels and python_stdlib.zip are zip archives already (brotli saves 1-5%): sent as they are.
    lock = json.loads(fetch(live_server, PYODIDE + "clip-web-lock.json", ask)[2])
    for entry in lock["packages"].values():
        status, headers, body = fetch(live_server, PYODIDE + entry["file_name"], ask)
        assert status == 200 and "content-encoding" not in headers, entry["file_name"]
        assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    # Models are compressed already and fetched by Range; our lock and web/ are small (see
    # docs/startup-ab.md, "Compressed assets").
    for path, file in (
        (PYODIDE + "python_stdlib.zip", pyodide_dir(assets_dir) / "python_stdlib.zip"),
        (PYODIDE + "clip-web-lock.json", pyodide_dir(assets_dir) / "clip-web-lock.json"),
        ("/models/tiny/image.onnx", tiny_model_dir / "image.onnx"),
        ("/js/clip.js", REPO_ROOT / "web" / "js" / "clip.js"),
    ):
        status, headers, body = fetch(live_server, path, ask)
        assert status == 200 and "content-encoding" not in headers and "vary" not in headers, path
        assert body == file.read_bytes(), path


def test_compressed_copies_are_not_urls(live_server):
    for path in (PYODIDE + "pyodide.asm.wasm.br", "/assets/encoded/ort-1.30.0/ort.wasm.min.mjs.br"):
        assert fetch(live_server, path, {"Accept-Encoding": CHROMIUM_ACCEPT})[0] == 404, path


def test_a_copy_older_than_its_source_is_not_sent(tmp_path, assets_dir):
    """A source replaced after `clip-web assets` ran (its copy's mtime no longer matches) is sent
    as it is, never as the old source's compressed bytes."""
    ort, encoded = tmp_path / f"ort-{pins.ORT_WEB_VERSION}", tmp_path / "encoded" / f"ort-{pins.ORT_WEB_VERSION}"
    encoded.mkdir(parents=True)
    ort.mkdir()
    shutil.copy2(assets_dir / ort.name / "ort.wasm.min.mjs", ort)  # copy2 keeps the mtimes
    shutil.copy2(assets_dir / "encoded" / ort.name / "ort.wasm.min.mjs.br", encoded)
    client = TestClient(create_app(Settings(assets_dir=tmp_path)))
    url, ask = ORT + "ort.wasm.min.mjs", {"Accept-Encoding": "br"}
    assert client.get(url, headers=ask).headers["content-encoding"] == "br"
    (ort / "ort.wasm.min.mjs").write_text("export const replaced = true;\n")
    response = client.get(url, headers=ask)
    assert "content-encoding" not in response.headers and response.text == "export const replaced = true;\n"


def test_a_bad_local_manifest_is_refused_by_field_and_the_rest_served(tmp_path, tiny_model_dir):
    """A local manifest with an unknown pipeline rule, or one contradicting another, is listed under
    "refused" with the field named; the good local model and the presets are still served."""
    models = tmp_path / "models"
    good = json.loads((tiny_model_dir / "manifest.json").read_text())
    cases = {
        "lanczos": ({"preprocess": {"interpolation": "lanczos"}}, "preprocess.interpolation: 'lanczos' is not one of"),
        "crop": ({"preprocess": {"resize_size": 100}}, "preprocess.resize_size: 100 is smaller than image_size"),
        "score": ({"scoring": {"kind": "sigmoid", "logit_scale": "high"}}, "scoring.logit_scale: must be a finite number"),
    }
    for folder, (change, _) in {"tiny": ({}, None), **cases}.items():
        (models / folder).mkdir(parents=True)
        manifest = {**good, **change, "id": f"{good['id']}-{folder}" if change else good["id"]}
        (models / folder / "manifest.json").write_text(json.dumps(manifest))
    client = TestClient(create_app(Settings(assets_dir=tmp_path / "assets", models_dir=models)))
    listing = client.get("/api/models").json()
    assert listing["default"] == good["id"]
    assert "xenova-vit-b-32-fp32" in [m["id"] for m in listing["models"]]
    refused = {r["manifest"]: r["error"] for r in listing["refused"]}
    assert set(refused) == {f"/models/{folder}/manifest.json" for folder in cases}
    for folder, (_, words) in cases.items():
        where = f"/models/{folder}/manifest.json"
        assert refused[where].startswith(f"{where}: {words}"), refused[where]
        assert str(tmp_path) not in refused[where]  # no server path leaks to the page


def test_presets_state_their_familys_rules():
    """CLIP presets say nothing and so are OpenAI CLIP; MobileCLIP presets state Apple's transform
    (shortest side, bilinear, centre crop, no Normalize; tests/pyapp/test_pipeline.py checks it
    against genuine torchvision) at their own size, and keep their text at 77 positions (S0-S2's
    text towers attend to padding)."""
    from pyapp.pipeline import OPENAI_IMAGE_RULES, ImageRules, Scoring, image_rules, scoring

    seen = set()
    for path in sorted((REPO_ROOT / "server" / "presets").glob("*.json")):
        manifest = json.loads(path.read_text())
        assert scoring(manifest) == Scoring(), path.name
        if "mobileclip" in manifest["id"]:
            size = 224 if manifest["id"].startswith("xenova-mobileclip-b-") else 256
            assert image_rules(manifest) == ImageRules(size=size, resize_size=size, interpolation="bilinear",
                                                       mean=None, std=None), path.name
            assert manifest["text"]["dynamic_sequence"] is False and manifest["context_length"] == 77
            seen.add("mobileclip")
        else:
            assert image_rules(manifest) == OPENAI_IMAGE_RULES, path.name
            seen.add("clip")
        for part in ("image", "text"):
            spec = manifest[part]
            # Pinned files are pinned by revision: a sha256 of "main" breaks when the repo moves on.
            if "sha256" in spec:
                assert "/resolve/main/" not in spec["url"], (path.name, part)
            assert ("sha256" in spec) == ("bytes" in spec), (path.name, part)
    assert seen == {"clip", "mobileclip"}
