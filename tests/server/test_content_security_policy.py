"""The Content-Security-Policy header (server/csp.py): the whole value on every page, the model
hosts taken from the manifests the server offers, and every other response unchanged (framing
only). tests/browser/test_csp.py loads the pages under it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server import pins
from server.app import create_app
from server.csp import model_sources, page_policy
from server.settings import Settings
from test_http import fetch

HF = "https://huggingface.co https://*.huggingface.co https://*.hf.co"


def expected(connect: str, framing: str = "'self'") -> str:
    return ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; manifest-src 'self'; "
            f"connect-src {connect}; img-src 'self' blob:; style-src 'self'; object-src 'none'; "
            f"base-uri 'self'; form-action 'self'; frame-ancestors {framing}")


@pytest.mark.parametrize("path, policy", [
    ("/", expected(f"'self' {HF}")),
    ("/index.html", expected(f"'self' {HF}")),
    ("/text.html", expected(f"'self' {HF}")),
    ("/search.html", expected(f"'self' {HF}")),
    ("/widget-demo.html", expected(f"'self' {HF}")),
    # The image page fetches an image from any URL the user types.
    ("/image.html", expected(f"'self' {HF} *")),
    # The widget, framed by any site.
    ("/embed", expected(f"'self' {HF}", framing="*")),
    ("/embed?mode=match&model=tiny-reference&origin=https://example.org", expected(f"'self' {HF}", framing="*")),
])
def test_each_page_carries_the_whole_policy(live_server, path, policy):
    status, headers, _ = fetch(live_server, path)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == policy


@pytest.mark.parametrize("path", [
    "/api/models", "/api/runtime", "/healthz", "/js/clip.js", "/css/app.css", "/favicon.svg",
    f"/assets/pyodide-{pins.PYODIDE_VERSION}/pyodide.asm.wasm", f"/assets/ort-{pins.ORT_WEB_VERSION}/ort.wasm.min.mjs",
    "/models/tiny/manifest.json", "/no-such-file.js",
])
def test_other_responses_state_framing_only(live_server, path):
    _, headers, _ = fetch(live_server, path)
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["cross-origin-embedder-policy"] == "require-corp"  # the rest as before


def _manifest(model_id: str, url_image: str, url_text: str) -> dict:
    part = {"input": "x", "output": "y", "input_dtype": "float32"}
    return {"id": model_id, "name": model_id, "variant": "fp32", "context_length": 77, "image_size": 224,
            "mean": [0, 0, 0], "std": [1, 1, 1], "embed_dim": 512,
            "image": dict(part, url=url_image), "text": dict(part, url=url_text, input_dtype="int32")}


def test_model_hosts_follow_the_configured_manifests(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "a.json").write_text(json.dumps(_manifest(
        "a", "https://models.example.org:8443/a/image.onnx", "https://models.example.org:8443/a/text.onnx")))
    (presets / "b.json").write_text(json.dumps(_manifest(
        "b", "https://huggingface.co/x/resolve/main/i.onnx", "https://huggingface.co/x/resolve/main/t.onnx")))
    local = tmp_path / "models"
    (local / "mine").mkdir(parents=True)
    (local / "mine" / "manifest.json").write_text(json.dumps(_manifest("mine", "image.onnx", "http://127.0.0.1:9999/t.onnx")))
    settings = Settings(assets_dir=tmp_path / "assets", presets_dir=presets, models_dir=local)
    # A local model's relative URL is ours ('self'); absolute ones add their origin, once each;
    # HuggingFace adds the hosts its downloads redirect to.
    assert model_sources(settings) == ["http://127.0.0.1:9999", "https://models.example.org:8443",
                                       "https://huggingface.co", "https://*.huggingface.co", "https://*.hf.co"]
    client = TestClient(create_app(settings))
    policy = client.get("/text.html").headers["content-security-policy"]
    assert ("connect-src 'self' http://127.0.0.1:9999 https://models.example.org:8443 https://huggingface.co "
            "https://*.huggingface.co https://*.hf.co;") in policy
    # A model added to the folder while the server runs is allowed on the next page load.
    (local / "later").mkdir()
    (local / "later" / "manifest.json").write_text(json.dumps(_manifest("later", "https://cdn.example.net/i.onnx", "t.onnx")))
    assert "https://cdn.example.net" in client.get("/text.html").headers["content-security-policy"]
    # JSON is unaffected.
    assert client.get("/api/models").headers["content-security-policy"] == "frame-ancestors 'self'"


def test_only_local_models_need_no_other_host(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    local = tmp_path / "models"
    (local / "mine").mkdir(parents=True)
    (local / "mine" / "manifest.json").write_text(json.dumps(_manifest("mine", "image.onnx", "text.onnx")))
    sources = model_sources(Settings(assets_dir=tmp_path, presets_dir=presets, models_dir=local))
    assert sources == []
    assert "connect-src 'self';" in page_policy("/text.html", sources)


def test_a_broken_manifest_leaves_only_self(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "bad.json").write_text('{"id": "x"}')
    assert model_sources(Settings(assets_dir=tmp_path, presets_dir=presets)) == []


def test_html_in_the_models_folder_is_not_one_of_our_pages(tmp_path):
    """The local models folder is the user's data (the benchmarks serve their transformers.js pages
    from it): served as before, with framing only."""
    local = tmp_path / "models"
    local.mkdir()
    (local / "page.html").write_text("<!doctype html><title>x</title>")
    client = TestClient(create_app(Settings(assets_dir=tmp_path / "assets", models_dir=local)))
    response = client.get("/models/page.html")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert client.get("/text.html").headers["content-security-policy"].startswith("default-src 'none'; ")
