"""Worker channel A/B: tensors from the Python worker straight to the onnxruntime worker (a
MessageChannel, as shipped) vs through the page (Runtime's `direct: false`, the old route), beside
transformers.js, in one run.

    python benchmarks/channel_ab.py                    # tiny + full-size ViT-B/32, fp32
    python benchmarks/channel_ab.py --kinds tiny --rounds 2

Contenders (same weights, same server, same thread count, each in its own browser context):
  ours        clip-web as shipped: page -> Python worker -> onnxruntime worker -> Python -> page
  ours_page   the old route: page -> Python -> page -> onnxruntime -> page (pixels and ids cross)
  tjs         transformers.js
Per call, measured inside the page (blob or text in, embedding out): a short prompt, the latency
image (1024x768 JPEG), and sequential throughput over a set of photos. Rounds interleave the
contenders so that noise from other processes falls on all alike; figures are medians.

Writes benchmarks/results/channel_ab.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import compare  # noqa: E402

CONTENDERS = ("ours", "ours_page", "tjs")
PROMPT = "a photo of a cat"
RESULTS = ROOT / "benchmarks" / "results" / "channel_ab.json"


def url(base: str, contender: str, kind: str, dtype: str, site: dict, threads: int) -> str:
    q = f"threads={threads}&image={compare.LATENCY_IMAGE}"
    if contender == "tjs":
        return f"{base}models/pages/tjs.html?model={kind}&dtype={compare.TJS_DTYPE[dtype]}&{q}"
    route = "&route=page" if contender == "ours_page" else ""
    return f"{base}models/pages/ours.html?model={site['ours'][f'{kind}/{dtype}']['id']}&{q}{route}"


def measure(browser, base, kind, dtype, site, args, external, console) -> dict:
    pages = {}
    samples = {"text": {c: [] for c in CONTENDERS}, "image": {c: [] for c in CONTENDERS},
               "throughput_ms": {c: [] for c in CONTENDERS}}
    names = site["throughput"]
    try:
        for c in CONTENDERS:
            pages[c] = compare.PageContender(browser, url(base, c, kind, dtype, site, args.threads), external, console)
            pages[c].call("load_images", sorted(set(names) | {compare.LATENCY_IMAGE}))
        for r in range(args.rounds):
            order = CONTENDERS[r % 3:] + CONTENDERS[:r % 3]
            for c in order:
                samples["text"][c] += pages[c].call("time_text", PROMPT, args.per_round, 1)
            for c in order:
                samples["image"][c] += pages[c].call("time_image", compare.LATENCY_IMAGE, args.per_round, 1)
            for c in order:
                samples["throughput_ms"][c].append(pages[c].call("throughput", names))
    finally:
        for p in pages.values():
            p.close()
    return {"samples": samples, "throughput_images": len(names)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(compare.KINDS), choices=compare.KINDS)
    ap.add_argument("--dtypes", nargs="+", default=["fp32"], choices=compare.DTYPES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--images", type=int, default=10, help="photos per throughput sample")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    compare.log("building the site (models, transformers.js, pages) ...")
    site = compare.build_site(dict(kinds=args.kinds, dtypes=args.dtypes, throughput_images=args.images))
    runs, console = compare.serve_and_run(args.kinds, args.dtypes, lambda browser, base, kind, dtype, external, console: measure(
        browser, base, kind, dtype, site, args, external, console), prefix="clip-channel-bench-")

    summary = {}
    for key, run in runs.items():
        s = run["samples"]
        med = {
            "text_ms": {c: statistics.median(x["total_ms"] for x in s["text"][c]) for c in CONTENDERS},
            "image_ms": {c: statistics.median(x["total_ms"] for x in s["image"][c]) for c in CONTENDERS},
            "images_per_s": {c: run["throughput_images"] * 1000 / statistics.median(s["throughput_ms"][c]) for c in CONTENDERS},
        }
        summary[key] = med
    out = {"machine": compare.machine_info(), "threads": args.threads, "rounds": args.rounds, "per_round": args.per_round,
           "prompt": PROMPT, "image": compare.LATENCY_IMAGE, "summary": summary,
           "samples": {k: r["samples"] for k, r in runs.items()}, "console": console[:50]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")

    lines = [f"Worker channel A/B, medians, {args.threads} threads, {args.rounds} rounds x {args.per_round} samples "
             f"(throughput: {args.images} photos per sample, one per round); load average at the end "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| model | measure | ours (worker to worker) | ours through the page | transformers.js | direct / page | direct / tjs |",
             "| --- | --- | --: | --: | --: | --: | --: |"]
    for key, m in summary.items():
        for name, unit, fmt in (("text_ms", "text, short prompt (ms)", ".1f"), ("image_ms", "image latency (ms)", ".1f"),
                                ("images_per_s", "throughput (images/s)", ".2f")):
            v = m[name]
            lines.append(f"| {key} | {unit} | {v['ours']:{fmt}} | {v['ours_page']:{fmt}} | {v['tjs']:{fmt}} | "
                         f"{v['ours'] / v['ours_page']:.2f}x | {v['ours'] / v['tjs']:.2f}x |")
    print("\n" + "\n".join(lines) + f"\n\nraw samples: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
