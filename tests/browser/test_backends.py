"""WebGPU and WebGL backends on this machine's software GPU (SwiftShader): checked for correctness
against torch where the model's ops run, and for a visible fallback to wasm where they do not."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest

import pyapp
from helpers import PW

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

TEXTS = ["a photo of a cat", "a portrait of an astronaut with the American flag", "東京の夜景", "Ⅻ ½ ²"]
IMAGES = ["rgb_photo_1024x768.jpg", "p_transparency_250x180.png", "size_2000x40.png"]


@pytest.fixture(scope="module")
def gpu_browser(playwright_instance):
    browser = playwright_instance.chromium.launch(
        executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS + PW.WEBGPU_ARGS, headless=PW.HEADLESS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def embeddings(page):
    corpus = dict(generate_image_corpus())
    images = [
        page.evaluate(
            "async (b64) => Array.from(await clip.embedImage(Uint8Array.from(atob(b64), c => c.charCodeAt(0))))",
            base64.b64encode(corpus[name]).decode(),
        )
        for name in IMAGES
    ]
    texts = page.evaluate("async (t) => (await clip.embedText(t)).map(e => Array.from(e))", TEXTS)
    return corpus, np.asarray(images, dtype=np.float32), np.asarray(texts, dtype=np.float32)


def check_against_torch(corpus, images, texts, torch_clip):
    ref_images = torch_clip.image_embeds(pyapp.preprocess_images([corpus[n] for n in IMAGES]))  # (3, 512)
    ref_texts = torch_clip.text_embeds(pyapp.tokenize(TEXTS))  # (4, 512)
    worst = min(cosine(a, b) for a, b in zip([*images, *texts], [*ref_images, *ref_texts]))
    assert worst >= 0.99999, worst
    return worst


@pytest.mark.parametrize("backend", ["webgpu", "webgl"])
def test_backend_runs_or_falls_back_visibly(gpu_browser, live_server, torch_clip, backend):
    context = gpu_browser.new_context(viewport=PW.VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PW.BOOT_TIMEOUT_MS)
    try:
        page.goto(f"{live_server.url}text.html?model=tiny-reference&backend={backend}")
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#message")
        info = page.evaluate("clip.info()")
        notices = page.inner_text("#notices")
        if info["backend"] == backend:
            assert notices == ""
        else:
            # Not every op exists in every backend: the page says so and runs on wasm.
            assert info["backend"] == "wasm"
            assert f"The {backend} backend cannot run this model" in notices and "using wasm instead" in notices
        assert backend in page.inner_text("#runtime-info") or info["backend"] == "wasm"
        worst = check_against_torch(*embeddings(page), torch_clip)
        print(f"{backend}: ran on {info['backend']}, min cosine vs torch {worst:.7f}")
        if backend == "webgpu":
            # SwiftShader provides WebGPU here and onnxruntime-web's WebGPU EP runs the whole model.
            assert info["backend"] == "webgpu"
    finally:
        context.close()
