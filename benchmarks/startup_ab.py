"""Start-up A/B: time to the first image and the first text embedding, cold and warm, for this
checkout, each start-up technique switched off alone, an older revision, and transformers.js, in
one run on the same model files.

    python benchmarks/startup_ab.py --base-rev a306fb5          # tiny + full-size ViT-B/32 fp32
    python benchmarks/startup_ab.py --kinds tiny --rounds 2

Variants (each a page load in a fresh browser context, then a reload in the same context):
  image-first pages (first embedding: the latency image, then "a photo of a cat")
    ours            this checkout: createClip({encoders: ['image', 'text']})
    ours_both       createClip() without `encoders` (the default: since 2026-12-07 the same as ours)
    ours_no_server_snapshot  as ours, without the server's Python snapshot (cold: a normal boot; warm: the
                    snapshot this browser made after it)
    ours_plain_python  as ours, with the plain stdlib and wheels instead of the precompiled ones
                    (so no server snapshot either: it is made over the precompiled stdlib)
    ours_boot_after pyapp's wheels loaded after Pyodide's boot, not during it (packagesAtBoot off)
    ours_images_wait  as ours, the first image after a snapshot restore waiting for numpy's and
                    Pillow's files and running the JPEG self-check itself (imagesEarly off)
    base            the --base-rev revision's createClip() (served by its own server)
    tjs             transformers.js, everything loaded in parallel (its documented way)
  text-only pages (first embedding: "a photo of a cat"; no image encoder needed)
    ours_text       createClip({encoders: ['text']})
    ours_no_server_snapshot_text  as ours_text, without the server's Python snapshot
    ours_plain_python_text  as ours_text, with the plain stdlib and wheels
    base_text       the base revision's createClip() (it loads both encoders)
    tjs_text        transformers.js loading its tokenizer and text model only

cold: a fresh context (empty HTTP cache, empty Cache Storage); warm: the same page loaded again.
Rounds rotate the order of variants. Figures: medians of marks taken in the page
(performance.now() since navigation). Writes benchmarks/results/startup_ab.json and prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import compare  # noqa: E402
from helpers import PW, LiveServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "startup_ab.json"
BASE_TREE = ROOT / ".cache" / "bench" / "base-rev"
BASE_SITE = ROOT / ".cache" / "bench" / "base-site"

VARIANTS = {
    # name: (server, page, extra query)
    "ours": ("new", "ours", "&encoders=image,text"),
    "ours_both": ("new", "ours", ""),
    "ours_no_server_snapshot": ("new", "ours", "&encoders=image,text&snapshot=browser"),
    "ours_plain_python": ("new", "ours", "&encoders=image,text&python=plain"),
    "ours_boot_after": ("new", "ours", "&encoders=image,text&boot=after"),
    "ours_images_wait": ("new", "ours", "&encoders=image,text&images=wait"),
    "base": ("base", "ours", ""),
    "tjs": ("new", "tjs", ""),
    "ours_text": ("new", "ours", "&first=text&encoders=text"),
    "ours_no_server_snapshot_text": ("new", "ours", "&first=text&encoders=text&snapshot=browser"),
    "ours_plain_python_text": ("new", "ours", "&first=text&encoders=text&python=plain"),
    "base_text": ("base", "ours", "&first=text"),
    "tjs_text": ("new", "tjs", "&first=text"),
}


def prepare_base(rev: str) -> Path:
    """A worktree of `rev` with its own asset cache (hard links: no download, nothing shared that
    either server rewrites; every write there is a rename) and a models folder of hard links."""
    if BASE_TREE.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(BASE_TREE)], cwd=ROOT, check=False)
        shutil.rmtree(BASE_TREE, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(BASE_TREE), rev], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cp", "-al", str(ROOT / ".assets"), str(BASE_TREE / ".assets")], check=True)
    if BASE_SITE.exists():
        shutil.rmtree(BASE_SITE)
    for p in sorted(compare.SITE.rglob("*")):
        if p.is_file() and not p.relative_to(compare.SITE).parts[0] == "tjs":
            compare._link(p, BASE_SITE / p.relative_to(compare.SITE))
    return BASE_TREE


class BaseServer(LiveServer):
    """`clip-web serve` from the base revision's worktree."""

    def __init__(self, tmp: Path, tree: Path, models_dir: Path):
        import helpers

        saved = helpers.REPO_ROOT
        helpers.REPO_ROOT = tree
        try:
            super().__init__(tmp, models_dir, env={"PYTHONPATH": str(tree)})
        finally:
            helpers.REPO_ROOT = saved


def page_url(servers: dict, variant: str, kind: str, dtype: str, site: dict, threads: int) -> str:
    server, page, extra = VARIANTS[variant]
    base = servers[server].url
    q = f"threads={threads}&image={compare.LATENCY_IMAGE}{extra}"
    if page == "tjs":
        return f"{base}models/pages/tjs.html?model={kind}&dtype={compare.TJS_DTYPE[dtype]}&{q}"
    return f"{base}models/pages/ours.html?model={site['ours'][f'{kind}/{dtype}']['id']}&{q}"


def wait_for_snapshot(page, timeout_s: float = 120.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = page.evaluate("window.bench.snapshotState?.()")
        if not state or not (state.get("made") or {}).get("pending"):
            return
        time.sleep(0.5)


def new_context(browser, persistent: bool):
    """A fresh browser context, and the profile folder to remove after it (persistent only).
    Off-the-record contexts keep storage in memory with a limit that two full-size models exceed
    (their warm runs download again); a persistent profile on disk is what a real visitor has."""
    if not persistent:
        return browser.new_context(viewport=PW.VIEWPORT), None
    profile = tempfile.mkdtemp(prefix="clip-startup-ab-profile-")
    context = browser.browser_type.launch_persistent_context(
        profile, executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=True, viewport=PW.VIEWPORT)
    return context, profile


def run(browser, servers, kind, dtype, site, variants, rounds, threads, external, console, persistent=False) -> dict:
    out = {v: [] for v in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            context, profile = new_context(browser, persistent)
            context.set_default_timeout(compare.PAGE_TIMEOUT_MS)
            try:
                page = context.new_page()
                compare.PageContender._watch(page, external, console)
                url = page_url(servers, v, kind, dtype, site, threads)
                cold = compare.load_page(page, url)
                if VARIANTS[v][1] == "ours":
                    wait_for_snapshot(page)  # a returning visitor finds it made
                warm = compare.load_page(page, url)
            finally:
                context.close()
                if profile:
                    shutil.rmtree(profile, ignore_errors=True)
            out[v].append({"cold": cold, "warm": warm})
            first = "first_text" if v.endswith("_text") else "first_image"
            compare.log(f"  {kind}/{dtype} {v}: {first} cold {cold['marks'][first]:.0f} ms, warm {warm['marks'][first]:.0f} ms")
    return out


def summarize(samples: dict) -> dict:
    s = {}
    for v, runs in samples.items():
        s[v] = {}
        for temp in ("cold", "warm"):
            marks = [r[temp]["marks"] for r in runs]
            s[v][temp] = {k: statistics.median(m[k] for m in marks) for k in ("ready", "first_image", "first_text")
                          if all(k in m for m in marks)}
            py = [r[temp].get("python") or {} for r in runs]
            if all("ready_ms" in p for p in py):
                s[v][temp]["python_ready_ms"] = statistics.median(p["ready_ms"] for p in py)
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(compare.KINDS), choices=compare.KINDS)
    ap.add_argument("--dtypes", nargs="+", default=["fp32"], choices=compare.DTYPES)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--base-rev", help="an older revision to compare with (its own server); without it no base variants")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--persistent", action="store_true",
                    help="each variant in a fresh on-disk profile (off-the-record contexts cannot keep two full-size models)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "startup-ab.md", help="the Markdown report ('' for none)")
    args = ap.parse_args()
    variants = [v for v in args.variants if args.base_rev or VARIANTS[v][0] != "base"]

    compare.log("building the site (models, transformers.js, pages) ...")
    site = compare.build_site(dict(kinds=args.kinds, dtypes=args.dtypes, throughput_images=1))
    tmp = Path(tempfile.mkdtemp(prefix="clip-startup-ab-"))
    servers = {}
    external, console = [], []
    results = {}
    try:
        servers["new"] = LiveServer(tmp, compare.SITE)
        if args.base_rev:
            tree = prepare_base(args.base_rev)
            servers["base"] = BaseServer(tmp, tree, BASE_SITE)
        results = compare.each_run(args.kinds, args.dtypes, lambda browser, kind, dtype: run(
            browser, servers, kind, dtype, site, variants, args.rounds, args.threads, external, console, args.persistent))
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if external:
        raise SystemExit(f"requests left 127.0.0.1: {external[:5]}")

    summary = {k: summarize(v) for k, v in results.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": compare.machine_info(), "base_rev": args.base_rev, "threads": args.threads,
                                    "rounds": args.rounds, "summary": summary, "samples": results,
                                    "console": console[:50]}, indent=1) + "\n")

    lines = []
    for key, per in summary.items():
        lines += ["", f"### {key}", "",
                  f"Median ms since navigation over {args.rounds} rounds, {args.threads} threads. \"first\" is the first image "
                  "embedding on image-first pages and the first text embedding on text-only pages.", "",
                  "| variant | cold: ready | cold: first | warm: ready | warm: first | warm: Python ready | warm first ÷ tjs |",
                  "| --- | --: | --: | --: | --: | --: | --: |"]
        for v, t in per.items():
            first = "first_text" if v.endswith("_text") else "first_image"
            peer = per.get("tjs_text" if v.endswith("_text") else "tjs", {}).get("warm", {}).get(first)
            cells = [f"{t[temp].get(k, float('nan')):.0f}" for temp in ("cold", "warm") for k in ("ready", first)]
            py = t["warm"].get("python_ready_ms")
            ratio = f"{t['warm'][first] / peer:.2f}x" if peer and first in t["warm"] else ""
            lines.append(f"| {v} | {' | '.join(cells)} | {'' if py is None else f'{py:.0f}'} | {ratio} |")
    table = "\n".join(lines)
    print(table + f"\n\nraw samples: {args.out}")
    if args.docs and str(args.docs) not in ("", "."):
        args.docs.write_text(DOC.format(base=args.base_rev or "none", table=table, doc=__doc__.split("Variants", 1)[1].split("cold:", 1)[0]))
        print(f"wrote {args.docs}")
    return 0


DOC = """# Start-up A/B: first embedding, cold and warm

Written by `python benchmarks/startup_ab.py --base-rev {base}` (raw samples:
benchmarks/results/startup_ab.json). Each variant is a page load in a fresh browser context (cold:
empty HTTP cache and Cache Storage), then the same page again (warm). Same model files, same
server for every variant of this checkout; the base revision runs from its own worktree and server.

Variants{doc}
{table}
"""


if __name__ == "__main__":
    raise SystemExit(main())
