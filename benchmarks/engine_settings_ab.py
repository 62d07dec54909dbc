"""Engine settings A/B: onnxruntime-web session options on our runtime, in one page, one run.

    python benchmarks/engine_settings_ab.py                         # full-size ViT-B/32 (random weights)
    python benchmarks/engine_settings_ab.py --model tiny-reference --rounds 6

Each setting gets its own runtime (Python worker + onnxruntime worker, 2 threads) in the same page,
created through createClip's `runtimeOptions.session` (merged over ours: graphOptimizationLevel
'extended'). Blocks rotate through the settings: a 300 ms pause (so no thread pool is still spinning
from the last block), 8 short-prompt texts, then 4 images back to back (the latency image, a
1024x768 JPEG; preprocessing of the next waits on the model like an indexing loop). Medians.
Python snapshots are off, so no runtime makes one in the background during the run.

Writes benchmarks/results/engine_settings_ab.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "tests" / "pyapp", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers import PW, LiveServer  # noqa: E402

SETTINGS = {
    "ours": {},  # as shipped: graphOptimizationLevel 'extended' (web/js/runtime/ort-backend.js)
    "all": {"graphOptimizationLevel": "all"},  # what we shipped before
    "no_spinning": {"extra": {"session": {"intra_op": {"allow_spinning": "0"}}}},
}
PROMPT = "a photo of a cat"
RESULTS = ROOT / "benchmarks" / "results" / "engine_settings_ab.json"

SETUP = """async ([model, settings]) => {
  const { createClip } = await import('/js/clip.js');
  window.clients = {};
  const load = {};
  for (const [name, session] of Object.entries(settings)) {
    clients[name] = await createClip({ model, threads: 2, runtimeOptions: { session, python: { snapshot: false } } });
    load[name] = (await clients[name].info()).timings.model;
  }
  return load;
}"""

BLOCK = """async ([name, b64, prompt]) => {
  const clip = clients[name];
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  await new Promise((r) => setTimeout(r, 300));
  await clip.embedText('warm up'); await clip.embedImage(bytes.slice());
  const text = [], image = [];
  for (let i = 0; i < 8; i++) { const t = performance.now(); await clip.embedText(prompt); text.push(performance.now() - t); }
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) { const t = performance.now(); await clip.embedImage(bytes.slice()); image.push(performance.now() - t); }
  return { text, image, block_ms: performance.now() - t0 };
}"""

SAME = """async ([b64, prompt]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const out = {};
  for (const [name, clip] of Object.entries(clients)) {
    out[name] = { image: Array.from(await clip.embedImage(bytes.slice())), text: Array.from(await clip.embedText(prompt)) };
  }
  return out;
}"""


def main() -> int:
    from image_corpus import generate_image_corpus
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit-b-32-random", help="a model id under --models-dir")
    ap.add_argument("--models-dir", type=Path, default=ROOT / ".cache" / "reference",
                    help="the reference models (tests/reference/build_models.py --full builds vit-b-32-random)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    jpeg = base64.b64encode(dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]).decode()
    samples = {s: {"text": [], "image": [], "block_ms": []} for s in SETTINGS}
    tmp = Path(tempfile.mkdtemp(prefix="clip-engine-ab-"))
    server = LiveServer(tmp, args.models_dir)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=True)
            page = browser.new_page()
            page.set_default_timeout(900_000)
            page.goto(server.url + "?model=" + args.model)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=600_000)
            load = page.evaluate(SETUP, [args.model, SETTINGS])
            names = list(SETTINGS)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    out = page.evaluate(BLOCK, [name, jpeg, PROMPT])
                    for k in samples[name]:
                        samples[name][k] += out[k] if isinstance(out[k], list) else [out[k]]
            outputs = page.evaluate(SAME, [jpeg, PROMPT])
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    import numpy as np

    base = {k: np.asarray(v, dtype=np.float32) for k, v in outputs["ours"].items()}
    summary = {}
    for name, s in samples.items():
        diff = max(float(np.abs(np.asarray(outputs[name][k], dtype=np.float32) - base[k]).max()) for k in base)
        summary[name] = {"text_ms": statistics.median(s["text"]), "image_ms": statistics.median(s["image"]),
                         "block_ms": statistics.median(s["block_ms"]), "max_abs_diff_vs_ours": diff,
                         "session_ms": {part: load[name][part]["session_ms"] for part in load[name]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "rounds": args.rounds, "settings": SETTINGS, "summary": summary,
                                    "samples": samples, "loadavg": os.getloadavg()}, indent=1) + "\n")
    ours = summary["ours"]
    lines = [f"Engine settings A/B on {args.model}, 2 threads, {args.rounds} rounds; medians; load average at the end "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| setting | text ms | image ms | 4 images ms | vs ours (4 images) | image session ms | max abs diff vs ours |",
             "| --- | --: | --: | --: | --: | --: | --: |"]
    for name, m in summary.items():
        lines.append(f"| {name} | {m['text_ms']:.1f} | {m['image_ms']:.1f} | {m['block_ms']:.0f} | "
                     f"{m['block_ms'] / ours['block_ms']:.2f}x | {m['session_ms'].get('image', 0):.0f} | {m['max_abs_diff_vs_ours']:.1e} |")
    print("\n".join(lines) + f"\n\nraw samples: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
