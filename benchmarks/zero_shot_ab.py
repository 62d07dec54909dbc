"""Zero-shot sort of the search index, this tree vs an older revision, in one Node process.

    python benchmarks/zero_shot_ab.py [--base-rev REV] [--rows 100000] [--labels 10] [--rounds 9]

Both revisions' web/js/search/compact-vectors.js get the same rows (synthetic 512-d, every row
set) and the same unit labels; the two are timed alternately, medians printed, and their results
compared (labels, probabilities, order). Node runs the same V8 and WebAssembly SIMD as Chromium;
the page adds only the transfer of the result. Raw samples: benchmarks/results/zero_shot_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = "web/js/search/compact-vectors.js"

SCRIPT = """
import { CompactVectors as New } from '%(new)s';
import { CompactVectors as Old } from '%(old)s';
const [n, nl, rounds, d] = [%(rows)d, %(labels)d, %(rounds)d, 512];
let s = 1;
const rnd = () => ((s = (s * 1103515245 + 12345) %% 2147483648) / 2147483648) - 0.5;
const a = new New(n, d), b = new Old(n, d);
const row = new Float32Array(d);
for (let k = 0; k < n; k++) { for (let i = 0; i < d; i++) row[i] = rnd() + (k %% 97) / 400; a.set(k, row); b.set(k, row); }
const unit = () => { const q = Float64Array.from({ length: d }, rnd); const m = Math.hypot(...q); return q.map((x) => x / m); };
const labels = Array.from({ length: nl }, unit);
const times = { new: [], old: [] };
let x, y;
for (let r = 0; r < rounds; r++) {
  for (const [name, v] of r %% 2 ? [['old', b], ['new', a]] : [['new', a], ['old', b]]) {
    const t0 = performance.now();
    const z = v.zeroShot(labels, 100);
    times[name].push(performance.now() - t0);
    if (name === 'new') x = z; else y = z;
  }
}
let labelDiffs = 0, probMaxAbs = 0, orderDiffs = 0;
for (let k = 0; k < n; k++) { labelDiffs += x.label[k] !== y.label[k]; probMaxAbs = Math.max(probMaxAbs, Math.abs(x.prob[k] - y.prob[k])); }
for (let k = 0; k < x.order.length; k++) orderDiffs += x.order[k] !== y.order[k];
console.log(JSON.stringify({ times, labelDiffs, probMaxAbs, orderDiffs }));
"""


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-rev", default="HEAD", help="the revision to compare with (default: HEAD)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "zero_shot_ab.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old-compact-vectors.mjs"
        old.write_text(subprocess.run(["git", "show", f"{args.base_rev}:{MODULE}"], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
        script = Path(tmp) / "ab.mjs"
        script.write_text(SCRIPT % {"new": (ROOT / MODULE).as_uri(), "old": old.as_uri(), "rows": args.rows,
                                    "labels": args.labels, "rounds": args.rounds})
        load = os.getloadavg()
        out = json.loads(subprocess.run(["node", str(script)], check=True, capture_output=True, text=True).stdout)
    new, old_ms = median(out["times"]["new"]), median(out["times"]["old"])
    print(f"zero-shot, {args.rows} rows x {args.labels} labels, medians of {args.rounds} (load {load[0]:.1f}): "
          f"this tree {new:.1f} ms, {args.base_rev} {old_ms:.1f} ms, ratio {new / old_ms:.2f}; results: "
          f"{out['labelDiffs']} labels and {out['orderDiffs']} places differ, probabilities within {out['probMaxAbs']:.1e}")
    Path(args.out).write_text(json.dumps({"base_rev": args.base_rev, "rows": args.rows, "labels": args.labels,
                                          "load_average": load, **out}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
