"""In-browser A/B of `clip-web models optimize`: the plain ViT-B/32 reference vs its optimised copy
(fused Attention, SkipLayerNorm, QuickGelu), same page, same server, alternating, medians.

    python benchmarks/optimized_graph_ab.py [--kind vit-b-32-random] [--rounds 3]

Per round and model: a fresh browser context (cold: the model is downloaded, its sessions
created), the image page with both encoders; then session creation per encoder (from the
onnxruntime worker), image and short-text latency (12 calls after 2 warm-ups), and the
embeddings' max abs difference between the two graphs. Needs `.cache/graph-opt/<kind>/{fp32,opt}`
(written by benchmarks/graph_optimisation.py). Writes benchmarks/results/optimized_graph_browser.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from helpers import PW, LiveServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "optimized_graph_browser.json"

MEASURE = """async (png) => {
  const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
  const image = [], text = [];
  for (let i = 0; i < 14; i++) {
    let t = performance.now(); await clip.embedImage(bytes); if (i >= 2) image.push(performance.now() - t);
    t = performance.now(); await clip.embedText('a photo of a cat'); if (i >= 2) text.push(performance.now() - t);
  }
  const e = Array.from(await clip.embedImage(bytes)), te = Array.from(await clip.embedText('a photo of a cat'));
  // The image page creates the text session in the background: both are in by now.
  const parts = Object.fromEntries([...clip.runtime.loadedParts].map(([k, v]) => [k.split(':')[1], v.timings]));
  return { parts, image, text, image_embeds: e, text_embeds: te };
}"""


def median(xs):
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="vit-b-32-random")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    folder = ROOT / ".cache" / "graph-opt" / args.kind
    ids = {v: json.loads((folder / v / "manifest.json").read_text())["id"] for v in ("fp32", "opt")}
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (180, 90, 40)).save(buf, format="PNG")
    import base64

    png = base64.b64encode(buf.getvalue()).decode()
    samples = {v: [] for v in ids}
    server = LiveServer(ROOT / ".cache" / "bench", folder)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=True)
            for r in range(args.rounds):
                for v in (("fp32", "opt") if r % 2 == 0 else ("opt", "fp32")):
                    context = browser.new_context()
                    page = context.new_page()
                    page.set_default_timeout(300_000)
                    page.goto(server.url + f"image.html?model={ids[v]}&threads=2")
                    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=300_000)
                    out = page.evaluate(MEASURE, png)
                    context.close()
                    samples[v].append(out)
                    print(f"round {r} {v}: sessions image {out['parts']['image']['session_ms']:.0f} ms, "
                          f"text {out['parts']['text']['session_ms']:.0f} ms; image {median(out['image']):.1f} ms, "
                          f"text {median(out['text']):.2f} ms", flush=True)
            browser.close()
    finally:
        server.stop()
    summary = {}
    for v, runs in samples.items():
        summary[v] = {
            "image_session_ms": median([s["parts"]["image"]["session_ms"] for s in runs]),
            "text_session_ms": median([s["parts"]["text"]["session_ms"] for s in runs]),
            "image_ms": median([x for s in runs for x in s["image"]]),
            "text_ms": median([x for s in runs for x in s["text"]]),
        }
    diffs = {k: max(abs(a - b) for a, b in zip(samples["fp32"][0][k], samples["opt"][0][k])) for k in ("image_embeds", "text_embeds")}
    ratios = {k: summary["opt"][k] / summary["fp32"][k] for k in summary["fp32"]}
    for s in samples.values():
        for run in s:
            run.pop("image_embeds"), run.pop("text_embeds")
    RESULTS.write_text(json.dumps({"kind": args.kind, "rounds": args.rounds, "summary": summary, "ratios": ratios,
                                   "max_abs_diff": diffs, "samples": samples}, indent=1))
    print(json.dumps({"summary": summary, "ratios": ratios, "max_abs_diff": diffs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
