"""/sw.js: web/sw.js with its build filled in (server/offline.py). Every URL it saves answers 200,
models are never in it, the version is the same for the same files and changes with any of them.
The browser side (saved, offline reload, a new version replacing the old) is
tests/browser/test_offline_pages.py."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from server import offline
from server.app import create_app
from server.settings import WEB_DIR, Settings


def build_from(script: str) -> dict:
    start = script.index("const BUILD = ") + len("const BUILD = ")
    return json.JSONDecoder().raw_decode(script[start:])[0]


@pytest.fixture(scope="module")
def client(assets_dir, reference_models):
    return TestClient(create_app(Settings(assets_dir=assets_dir, models_dir=reference_models)))


def test_sw_js_is_served_with_its_build_and_revalidated(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert offline.BUILD_PLACEHOLDER not in response.text
    build = build_from(response.text)
    assert build["version"].startswith("0.") and len(build["version"].split("+")[1]) == 12
    head = client.head("/sw.js")
    assert head.status_code == 200 and head.headers["content-length"] == response.headers["content-length"]


def test_every_saved_url_answers_and_no_model_is_saved(client):
    build = build_from(client.get("/sw.js").text)
    files = build["files"]
    assert set(build["immutable"]) <= set(files)
    for path in files:
        assert client.get(path).status_code == 200, path
    assert not [p for p in files if p.startswith("/models/") or p.endswith(".onnx")]
    assert "/sw.js" not in files
    runtime = client.get("/api/runtime").json()
    # The lock the pages boot from, each of its wheels, onnxruntime-web's wasm build.
    lock_url = (runtime["pyodide_precompiled"] or {}).get("lock_url", runtime["pyodide_lock_url"])
    lock = client.get(lock_url).json()
    for package in lock["packages"].values():
        assert runtime["pyodide_index_url"] + package["file_name"] in files
    # Not the served snapshot: a page keeps its own copy (and boots normally without one).
    assert runtime["python_snapshot"] and runtime["python_snapshot"]["url"] not in files
    assert runtime["ort_base_url"] + "ort-wasm-simd-threaded.wasm" in build["immutable"]
    # Our locks are revalidated by the server, so they are never served from the saved copy first.
    assert lock_url not in build["immutable"]
    # Every page and module of web/.
    assert {"/", "/index.html", "/text.html", "/js/runtime/py-worker.js", "/manifest.webmanifest"} <= set(files)


def test_version_is_stable_and_follows_the_files(tmp_path, assets_dir, reference_models):
    web = tmp_path / "web"
    shutil.copytree(WEB_DIR, web)

    def version(**changes):
        settings = Settings(**{"assets_dir": assets_dir, "models_dir": reference_models, "web_dir": web, **changes})
        return build_from(TestClient(create_app(settings)).get("/sw.js").text)["version"]

    first = version()
    assert version() == first
    (web / "css" / "app.css").write_text((web / "css" / "app.css").read_text() + "\n/* changed */\n")
    changed_page = version()
    assert changed_page != first
    (web / "sw.js").write_text((web / "sw.js").read_text() + "\n// changed\n")
    assert version() not in (first, changed_page)  # the worker's own code counts too
    assert version(models_dir=None) != version()  # another model list


def test_a_service_worker_without_its_placeholder_is_refused(tmp_path, assets_dir):
    web = tmp_path / "web"
    shutil.copytree(WEB_DIR, web)
    (web / "sw.js").write_text("self.addEventListener('fetch', () => {});\n")
    response = TestClient(create_app(Settings(assets_dir=assets_dir, web_dir=web))).get("/sw.js")
    assert response.status_code == 503
    assert offline.BUILD_PLACEHOLDER in response.text and "exactly once" in response.text


def test_web_app_manifest_is_served_as_one(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["start_url"] == "./" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert client.get("/" + icon["src"]).status_code == 200
