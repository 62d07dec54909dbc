"""Text latency A/B: the same text encoder run at 77 positions (today's fixed length) and at the
prompt's real length (the dynamic sequence axis), beside transformers.js, in one run.

    python benchmarks/text_latency.py                 # tiny + full-size ViT-B/32, fp32 + uint8
    python benchmarks/text_latency.py --kinds tiny --rounds 2

Contenders (same weights, same server, same thread count, each in its own browser context):
  ours_77    clip-web with a manifest that leaves out `dynamic_sequence`: every text runs at 77
  ours       clip-web as shipped: the batch is cut after its last end-of-text token
  tjs        transformers.js (its tokenizer pads to the longest prompt)
Both "ours" manifests name the very same ONNX files, so the A/B isolates the sequence length.

Prompts: short ("a photo of a cat", 7 positions), medium (~32 positions) and long (over 77
tokens, truncated: 77 positions, where the cut gains nothing). Rounds interleave the contenders
so that noise from other processes falls on all alike; figures are medians of all samples,
total time per call (tokenize + inference), measured inside the page.

Writes benchmarks/results/text_latency.json and prints a Markdown table (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import compare  # noqa: E402

PROMPTS = {
    "short": "a photo of a cat",
    "medium": "a close-up photograph of an orange tabby cat sleeping on a blue woollen blanket next to a "
              "window on a rainy autumn afternoon",
    "long": " ".join(["a very long caption that keeps going"] * 14),
}
CONTENDERS = ("ours_77", "ours", "tjs")
RESULTS = ROOT / "benchmarks" / "results" / "text_latency.json"


def add_fixed_length_manifests(site: dict) -> None:
    """A second manifest per model folder of ours: same files, no dynamic_sequence (77 positions)."""
    for entry in site["ours"].values():
        folder = compare.SITE / entry["id"]
        manifest = json.loads((folder / "manifest.json").read_text())
        fixed = dict(manifest, id=f"{manifest['id']}-77", name=f"{manifest['name']} [77 positions]")
        fixed["text"] = {k: v for k, v in manifest["text"].items() if k != "dynamic_sequence"}
        fixed["image"] = dict(manifest["image"], url=f"../{entry['id']}/{manifest['image']['url']}")
        fixed["text"]["url"] = f"../{entry['id']}/{manifest['text']['url']}"
        out = compare.SITE / fixed["id"]
        out.mkdir(exist_ok=True)
        (out / "manifest.json").write_text(json.dumps(fixed, indent=2) + "\n")
        entry["fixed_id"] = fixed["id"]


def url(base: str, contender: str, kind: str, dtype: str, site: dict, threads: int) -> str:
    q = f"threads={threads}&image={compare.LATENCY_IMAGE}"
    if contender == "tjs":
        return f"{base}models/pages/tjs.html?model={kind}&dtype={compare.TJS_DTYPE[dtype]}&{q}"
    entry = site["ours"][f"{kind}/{dtype}"]
    return f"{base}models/pages/ours.html?model={entry['fixed_id'] if contender == 'ours_77' else entry['id']}&{q}"


def measure(browser, base, kind, dtype, site, args, external, console) -> dict:
    pages = {}
    samples = {p: {c: [] for c in CONTENDERS} for p in PROMPTS}
    try:
        for c in CONTENDERS:
            pages[c] = compare.PageContender(browser, url(base, c, kind, dtype, site, args.threads), external, console)
        for r in range(args.rounds):
            order = CONTENDERS[r % 3:] + CONTENDERS[:r % 3]
            for prompt, text in PROMPTS.items():
                for c in order:
                    samples[prompt][c] += pages[c].call("time_text", text, args.per_round, 1)
    finally:
        for p in pages.values():
            p.close()
    return {"samples": samples}


def positions() -> dict:
    import pyapp

    ids = pyapp.tokenize(list(PROMPTS.values()))  # (3, 77)
    return {k: int(pyapp.tokenizer.trim_padding(ids[i:i + 1]).shape[1]) for i, k in enumerate(PROMPTS)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(compare.KINDS), choices=compare.KINDS)
    ap.add_argument("--dtypes", nargs="+", default=list(compare.DTYPES), choices=compare.DTYPES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=6)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "text-latency.md", help="the Markdown report ('' for none)")
    args = ap.parse_args()

    cfg = dict(kinds=args.kinds, dtypes=args.dtypes, throughput_images=1)
    compare.log("building the site (models, transformers.js, pages) ...")
    site = compare.build_site(cfg)
    add_fixed_length_manifests(site)
    lengths = positions()
    runs, console = compare.serve_and_run(args.kinds, args.dtypes, lambda browser, base, kind, dtype, external, console: measure(
        browser, base, kind, dtype, site, args, external, console), prefix="clip-text-bench-")

    summary = {}
    for key, run in runs.items():
        summary[key] = {}
        for prompt, per in run["samples"].items():
            med = {c: statistics.median(x["total_ms"] for x in xs) for c, xs in per.items()}
            summary[key][prompt] = {"median_ms": med, "n": {c: len(xs) for c, xs in per.items()},
                                    "ours_vs_77": med["ours"] / med["ours_77"], "ours_vs_tjs": med["ours"] / med["tjs"],
                                    "ours_77_vs_tjs": med["ours_77"] / med["tjs"]}
    out = {"machine": compare.machine_info(), "threads": args.threads, "rounds": args.rounds,
           "per_round": args.per_round, "prompts": PROMPTS, "positions": lengths, "summary": summary,
           "samples": {k: r["samples"] for k, r in runs.items()}, "console": console[:50]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")

    lines = [f"Text latency, median ms per call (tokenize + inference, measured in the page), {args.threads} threads, "
             f"{args.rounds} rounds x {args.per_round} samples per contender and prompt; load average at the end "
             f"{', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}.", "",
             "| model | prompt (positions) | ours at 77 | ours at real length | transformers.js | real / 77 | ours / tjs |",
             "| --- | --- | --: | --: | --: | --: | --: |"]
    for key, per in summary.items():
        for prompt, s in per.items():
            m = s["median_ms"]
            lines.append(f"| {key} | {prompt} ({lengths[prompt]}) | {m['ours_77']:.1f} | {m['ours']:.1f} | {m['tjs']:.1f} | "
                         f"{s['ours_vs_77']:.2f}x | {s['ours_vs_tjs']:.2f}x |")
    table = "\n".join(lines)
    print("\n" + table + f"\n\nraw samples: {args.out}")
    if args.docs and str(args.docs) not in ("", "."):
        args.docs.write_text(DOC.format(table=table, prompts="\n".join(f"- {k}: `{v}`" for k, v in PROMPTS.items())))
        print(f"wrote {args.docs}")
    return 0


DOC = """# Text latency: 77 positions vs the real length vs transformers.js

Written by `python benchmarks/text_latency.py` (raw samples: benchmarks/results/text_latency.json).
The same ONNX files run under two manifests: one without `dynamic_sequence` (every text at 77
positions, as before) and the shipped one (the batch cut after its last end-of-text token).
transformers.js pads to the longest prompt. Same server, same browser, same thread count.

{table}

Prompts:
{prompts}

On the tiny model the model itself costs ~1-2 ms: what is left is our fixed cost per call (two
worker round trips: tokens from the Python worker, then the onnxruntime worker). On the full-size
model the sequence length is the cost, and the cut removes it; at 77 tokens both run the same work.
"""


if __name__ == "__main__":
    raise SystemExit(main())
