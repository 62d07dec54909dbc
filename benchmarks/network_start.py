"""Cold start over a throttled network: time to the first image and the first text embedding, and
the bytes on the wire, for clip-web and transformers.js on the same model files, in one run.

    python benchmarks/network_start.py                          # tiny + full-size, fp32 + uint8, 3 rounds
    python benchmarks/network_start.py --kinds tiny --dtypes fp32 --rounds 1    # a smoke run

The link: benchmarks/throttle_proxy.py, a reverse proxy in front of the benchmark's `clip-web
serve` (compare.serve_and_run, the site of compare.build_site in its own folder), 50 Mbit/s shared
by every connection in each direction, 40 ms per round trip (each request, and each new
connection's handshake). Every page load goes through it, so what the page, its workers and their
workers fetch is slowed alike and counted at the socket. Why not the DevTools protocol's
Network.emulateNetworkConditions: the probe below measures it in every run (on this Chromium it
slows the page and its workers but not a worker's own workers, and the page's session reports
only the page's own requests).

Probe, first in every run: a 4 MB file fetched by the page, by a dedicated worker made after the
throttle was set, by a worker of that worker (onnxruntime-web's threads are workers of our
onnxruntime worker), then by the page and the worker at once; direct to the server, with the
DevTools emulation on the page target, and through the proxy. The run stops if the proxy does not
slow all of them to the link's rate.

Variants, each sample a page load in a fresh browser context (empty HTTP cache and Cache Storage):
  ours          clip-web: createClip({encoders: ['image', 'text']}) (benchmarks/pages/ours.js)
  tjs           transformers.js with its library files (transformers.min.js, onnxruntime-web's
                .mjs and .wasm) sent brotli 11 when the browser accepts it (the proxy's overlay),
                as our server sends Pyodide's and onnxruntime-web's and as a compressing CDN would
  tjs_identity  transformers.js with its library as our server sends /models/ files (identity)
  ours_text     a text-only page: createClip({encoders: ['text']}), first a text embedding
  tjs_text      transformers.js loading its tokenizer and text model only (library brotli)
Model files (ONNX, tokenizer, configs) are identity for every variant, as a model hub sends them.
Conditions: `throttled` (through the proxy) and `loopback` (straight to the server, no proxy: what
the same page costs without a network, for reference). Rounds rotate the order of every
(condition, variant) pair. Figures: medians of marks taken in the page (performance.now() since
navigation, benchmarks/pages/bench-common.js runStartup). Bytes: the proxy's count for the requests
of each throttled cold start made before its first text embedding, split by kind, medians over the
rounds (the JSON keeps every sample's every response); decoded sizes of encoded responses are the
identity Content-Length (a HEAD to the server).

Writes benchmarks/results/network_start.json and docs/network-start.md. The default run takes
about an hour on a 2-core machine: a full-size fp32 cold start moves 0.6 GB (ours) to 0.9 GB
(transformers.js) through the 50 Mbit/s link, 100-150 s each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import compare  # noqa: E402
from helpers import PW  # noqa: E402
from throttle_proxy import ThrottleProxy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "network_start.json"
DOC = ROOT / "docs" / "network-start.md"
# Its own site folder: compare.py and startup_ab.py rebuild .cache/bench/site, perhaps while this runs.
SITE = ROOT / ".cache" / "bench" / "network-site"
ENCODED = ROOT / ".cache" / "bench" / "network-encoded"
PROBE_BYTES = 4_000_000

VARIANTS = {
    # name: (page, extra query, transformers.js library brotli)
    "ours": ("ours", "&encoders=image,text", False),
    "tjs": ("tjs", "", True),
    "tjs_identity": ("tjs", "", False),
    "ours_text": ("ours", "&first=text&encoders=text", False),
    "tjs_text": ("tjs", "&first=text", True),
}
PEER = {"ours": "tjs", "ours_text": "tjs_text"}
LOOPBACK_VARIANTS = ("ours", "tjs", "ours_text", "tjs_text")  # tjs_identity is tjs there
KINDS = ("runtime", "model", "tokenizer_config", "other")
KIND_NAME = {"runtime": "runtime (wasm, JS, wheels, zip, lock)", "model": "model weights (.onnx)",
             "tokenizer_config": "tokenizer, vocab, configs, manifest", "other": "page, image, API"}


def kind_of(path: str) -> str:
    if path.endswith(".onnx"):
        return "model"
    if path.startswith("/assets/vocab/") or path.startswith("/models/tjs/models/") or path.endswith("/manifest.json"):
        return "tokenizer_config"
    if path.startswith("/assets/") or path.startswith("/models/tjs/lib/") or path.startswith("/js/"):
        return "runtime"
    return "other"


def page_url(base: str, variant: str, kind: str, dtype: str, site: dict, threads: int) -> str:
    page, extra, _ = VARIANTS[variant]
    return compare.page_url(base, page, kind, dtype, site, threads) + extra


# ------------------------------------------------------------------------------- site extras
def tjs_overlay() -> tuple[dict, list[dict]]:
    """{URL path: (brotli 11 bytes, 'br')} for transformers.js's JS and wasm in the site, made once
    (cached by content hash, the same brotli.compress(quality=11) as `clip-web assets`)."""
    import brotli

    ENCODED.mkdir(parents=True, exist_ok=True)
    overlay, sizes = {}, []
    for f in sorted((SITE / "tjs" / "lib").iterdir()):
        if f.suffix not in (".js", ".mjs", ".wasm"):
            continue
        data = f.read_bytes()
        cached = ENCODED / f"{hashlib.sha256(data).hexdigest()}.br"
        if not cached.is_file():
            compare.log(f"brotli 11: {f.name} ({len(data):,} bytes; once) ...")
            t0 = time.time()
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(brotli.compress(data, quality=11))
            tmp.rename(cached)
            compare.log(f"  {cached.stat().st_size:,} bytes in {time.time() - t0:.1f} s")
        br = cached.read_bytes()
        assert brotli.decompress(br) == data
        overlay[f"/models/tjs/lib/{f.name}"] = (br, "br")
        sizes.append({"file": f.name, "identity": len(data), "br": len(br)})
    return overlay, sizes


def build(kinds, dtypes) -> dict:
    compare.SITE = SITE  # build_site and serve_and_run read the module's SITE
    site = compare.build_site(dict(kinds=list(kinds), dtypes=list(dtypes), throughput_images=1))
    (SITE / "pages" / "probe.bin").write_bytes(hashlib.shake_256(b"clip-web probe").digest(PROBE_BYTES))
    return site


# ------------------------------------------------------------------------------------- probe
def probe(browser, server_url: str, proxy: ThrottleProxy, mbit: float, rtt_ms: float) -> dict:
    """The 4 MB probe (netprobe.html) direct, with DevTools emulation on the page target, and
    through the proxy: time per fetch, and which of the probe's fetches each way of counting saw."""
    transfer_ms = PROBE_BYTES * 8 / (mbit * 1e6) * 1000
    out = {"bytes": PROBE_BYTES, "mbit": mbit, "rtt_ms": rtt_ms, "transfer_ms": transfer_ms, "modes": {}}
    for mode in ("direct", "cdp", "proxy"):
        context = browser.new_context(viewport=PW.VIEWPORT)
        try:
            page = context.new_page()
            seen = {}
            if mode == "cdp":
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                urls = {}
                cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
                cdp.on("Network.loadingFinished", lambda e: seen.__setitem__(urls.get(e["requestId"], ""), e["encodedDataLength"]))
                cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": rtt_ms,
                                                              "downloadThroughput": mbit * 1e6 / 8,
                                                              "uploadThroughput": mbit * 1e6 / 8})
            base = server_url
            if mode == "proxy":
                i0 = proxy.reset(overlay=False)
                base = proxy.url
            page.goto(base + "models/pages/netprobe.html")
            page.wait_for_function("document.body && document.body.dataset.state !== 'loading'")
            r = page.evaluate("u => probe.run(u)", "probe.bin")
            if mode == "proxy":
                seen = {rec["path"] + "?" + rec["query"]: rec["wire_bytes"] for rec in proxy.records(i0)}
        finally:
            context.close()
        fetches = {  # label: (result, the `from=` the probe put in its URL)
            "page": (r["page"], "page"),
            "dedicated worker": (r["worker"], "worker"),
            "worker of that worker": (r["nested"], "nested"),
            "page, with the worker at once": (r["concurrent"]["page"], "page-concurrent"),
            "worker, with the page at once": (r["concurrent"]["worker"], "worker-concurrent"),
        }
        counted = {}
        for url, n in seen.items():
            if "probe.bin" in url and "from=" in url:
                counted[url.split("from=")[1].split("&")[0]] = n
        row = {}
        for label, (f, src) in fetches.items():
            floor = transfer_ms * (2 if "at once" in label else 1)
            row[label] = {"ms": f["ms"], "bytes": f["bytes"], "throttled": f["ms"] >= 0.8 * floor,
                          "counted_bytes": counted.get(src)}
        out["modes"][mode] = row
        compare.log(f"  probe {mode}: " + ", ".join(f"{k} {v['ms']:.0f} ms" for k, v in row.items()))
    out["proxy_throttles_all"] = all(v["throttled"] for v in out["modes"]["proxy"].values())
    out["proxy_counts_all"] = all((v["counted_bytes"] or 0) >= PROBE_BYTES for v in out["modes"]["proxy"].values())
    return out


# ---------------------------------------------------------------------------------- sampling
class Sizes:
    """Identity sizes of encoded responses, asked of the server once per path (HEAD)."""

    def __init__(self, server_url: str):
        self.base = server_url.rstrip("/")
        self.cache: dict[str, int | None] = {}

    def identity(self, path: str) -> int | None:
        if path not in self.cache:
            req = urllib.request.Request(self.base + path, method="HEAD", headers={"Accept-Encoding": "identity"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    n = r.headers.get("Content-Length")
                    self.cache[path] = int(n) if n and r.headers.get("Content-Encoding") is None else None
                if self.cache[path] is None:  # no length in the HEAD: count a GET's body
                    req = urllib.request.Request(self.base + path, headers={"Accept-Encoding": "identity"})
                    with urllib.request.urlopen(req, timeout=60) as r:
                        self.cache[path] = len(r.read()) if r.headers.get("Content-Encoding") is None else None
            except (OSError, ValueError):
                self.cache[path] = None
        return self.cache[path]


def cold_start(browser, url: str, proxy: ThrottleProxy | None, overlay: bool, external, console) -> dict:
    context = browser.new_context(viewport=PW.VIEWPORT)
    context.set_default_timeout(compare.PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        compare.PageContender._watch(page, external, console)
        i0 = proxy.reset(overlay) if proxy else 0
        t0 = time.monotonic()
        startup = compare.load_page(page, url)
        records = proxy.records(i0) if proxy else None
    finally:
        context.close()
    sample = {"startup": startup}
    if records is not None:
        for r in records:
            for k in ("t_request", "t_first_byte", "t_done"):
                r[k] = None if r[k] is None else round((r[k] - t0) * 1000, 1)
        sample["responses"] = records
    return sample


def bytes_summary(responses: list[dict], first_text_ms: float, sizes: Sizes) -> dict:
    """Bytes of the responses asked for before the page's first text embedding (its cold start),
    by kind: on the wire (head + body as sent), body as sent (encoded) and decoded."""
    by = {k: {"requests": 0, "wire": 0, "body": 0, "decoded": 0} for k in KINDS}
    downloaded, repeats = set(), []  # a 200 for a path that already had one in this cold start
    encodings: dict[str, int] = {}
    accept = set()
    late = [r["path"] for r in responses if r["t_request"] > first_text_ms]
    unfinished = [r["path"] for r in responses if r["t_done"] is None and r["t_request"] <= first_text_ms]
    for r in responses:
        if r["t_request"] > first_text_ms:
            continue
        k = by[kind_of(r["path"])]
        decoded = r["body_bytes"]
        if r.get("content_encoding"):
            decoded = r.get("identity_bytes") or sizes.identity(r["path"]) or 0
            encodings[r["content_encoding"]] = encodings.get(r["content_encoding"], 0) + 1
        k["requests"] += 1
        k["wire"] += r["wire_bytes"]
        k["body"] += r["body_bytes"]
        k["decoded"] += decoded
        r["decoded_bytes"] = decoded
        if r["status"] == 200:
            if r["path"] in downloaded:
                repeats.append({"path": r["path"], "body": r["body_bytes"]})
            downloaded.add(r["path"])
        if r.get("accept_encoding"):
            accept.add(r["accept_encoding"])
    total = {f: sum(by[k][f] for k in KINDS) for f in ("requests", "wire", "body", "decoded")}
    return {"by_kind": by, "total": total, "repeats": repeats, "repeat_body": sum(x["body"] for x in repeats),
            "encodings": encodings, "accept_encoding": sorted(accept),
            "after_first_text": late, "unfinished_at_first_text": unfinished}


def run(browser, server_url, proxy, sizes, kind, dtype, site, cfg, external, console) -> dict:
    pairs = [("throttled", v) for v in cfg["variants"]]
    if cfg["loopback"]:
        pairs += [("loopback", v) for v in cfg["variants"] if v in LOOPBACK_VARIANTS]
    out = {c: {v: [] for v in cfg["variants"]} for c in ("throttled", "loopback")}
    for r in range(cfg["rounds"]):
        order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
        for cond, v in order:
            p = proxy if cond == "throttled" else None
            base = proxy.url if p else server_url
            s = cold_start(browser, page_url(base, v, kind, dtype, site, cfg["threads"]), p, VARIANTS[v][2],
                           external, console)
            marks = s["startup"]["marks"]
            if p:
                s["bytes"] = bytes_summary(s["responses"], marks["first_text"], sizes)
            out[cond][v].append(s)
            first = "first_text" if v.endswith("_text") else "first_image"
            extra = f", {s['bytes']['total']['wire'] / 1e6:.1f} MB on the wire" if p else ""
            also = "" if first == "first_text" else f", first_text {marks['first_text']:.0f} ms"
            compare.log(f"  {kind}/{dtype} {cond} {v}: {first} {marks[first]:.0f} ms{also}{extra}")
    return {c: {v: s for v, s in per.items() if s} for c, per in out.items()}


# ----------------------------------------------------------------------------------- summary
def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(run: dict) -> dict:
    s = {}
    for cond, per in run.items():
        for v, samples in per.items():
            e = s.setdefault(v, {})
            marks = [x["startup"]["marks"] for x in samples]
            e[cond] = {k: _med([m.get(k) for m in marks]) for k in ("ready", "first_image", "first_text")}
            e[cond]["n"] = len(samples)
            if cond == "throttled":
                b = [x["bytes"] for x in samples]
                e["bytes"] = {
                    "by_kind": {k: {f: _med([x["by_kind"][k][f] for x in b]) for f in ("requests", "wire", "body", "decoded")}
                                for k in KINDS},
                    "total": {f: _med([x["total"][f] for x in b]) for f in ("requests", "wire", "body", "decoded")},
                    "repeat_body": _med([x["repeat_body"] for x in b]),
                    "repeats": sorted({x["path"] for y in b for x in y["repeats"]}),
                    "encodings": b[0]["encodings"], "accept_encoding": sorted({a for x in b for a in x["accept_encoding"]}),
                    "spread": {"wire_min": min(x["total"]["wire"] for x in b), "wire_max": max(x["total"]["wire"] for x in b)},
                }
    return s


def _mb(n):
    return "–" if n is None else f"{n / 1e6:.2f}"


def _ms(n):
    return "–" if n is None else f"{n:,.0f}"


def _ratio(a, b):
    return "" if not a or not b else f"{a / b:.2f}x"


def tables(summary: dict, cfg: dict) -> str:
    lines = []
    for key, per in summary.items():
        lines += ["", f"### {key}", "",
                  f"Median ms since navigation, {cfg['rounds']} round(s), {cfg['threads']} threads; throttled: "
                  f"{cfg['mbit']:g} Mbit/s, {cfg['rtt_ms']:g} ms round trip. First image: image-first pages; "
                  "first text: on image-first pages right after the image, on `_text` pages the page's first "
                  "embedding. Ratio: the throttled first embedding ÷ transformers.js's on the same kind of page "
                  "(ours ÷ tjs, ours_text ÷ tjs_text; below 1 is better for us).", "",
                  "| variant | throttled: ready | first image | first text | loopback: first image | first text | throttled first ÷ tjs |",
                  "| --- | --: | --: | --: | --: | --: | --: |"]
        for v, e in per.items():
            t, lb = e.get("throttled", {}), e.get("loopback", {})
            first = "first_text" if v.endswith("_text") else "first_image"
            peer = per.get(PEER.get(v, ""), {}).get("throttled", {}).get(first)
            lines.append(f"| {v} | {_ms(t.get('ready'))} | {_ms(t.get('first_image'))} | {_ms(t.get('first_text'))} | "
                         f"{_ms(lb.get('first_image'))} | {_ms(lb.get('first_text'))} | {_ratio(t.get(first), peer)} |")
        lines += ["", f"Bytes of the throttled cold start (MB = 10^6 bytes): what the proxy sent for the requests made "
                  "before the first text embedding; body as sent (encoded), decoded in parentheses; the total "
                  "includes HTTP heads. Downloaded again: bodies of a second 200 for a file this cold start had "
                  f"already received once. Link floor: the total at {cfg['mbit']:g} Mbit/s.", "",
                  "| variant | requests | " + " | ".join(KIND_NAME[k] for k in KINDS)
                  + " | total on the wire | of which downloaded again | link floor (s) | wire ÷ tjs |",
                  "| --- | --: | " + " | ".join("--:" for _ in KINDS) + " | --: | --: | --: | --: |"]
        for v, e in per.items():
            b = e.get("bytes")
            if not b:
                continue
            peer = per.get(PEER.get(v, ""), {}).get("bytes", {}).get("total", {}).get("wire")
            cells = [f"{_mb(b['by_kind'][k]['body'])} ({_mb(b['by_kind'][k]['decoded'])})" for k in KINDS]
            tot = b["total"]
            again = ", ".join(p.rsplit("/", 1)[-1] for p in b["repeats"])
            lines.append(f"| {v} | {tot['requests']:.0f} | {' | '.join(cells)} | {_mb(tot['wire'])} ({_mb(tot['decoded'])}) | "
                         f"{_mb(b['repeat_body'])}{f' ({again})' if again else ''} | "
                         f"{tot['wire'] * 8 / (cfg['mbit'] * 1e6):.1f} | {_ratio(tot['wire'], peer)} |")
    return "\n".join(lines)


def runtime_files(run: dict) -> str:
    """Every runtime response of one throttled cold start per contender page (the first model's)."""
    lines = ["| variant | file | encoding | on the wire | decoded |", "| --- | --- | --- | --: | --: |"]
    for v in ("ours", "tjs", "tjs_identity"):
        samples = run.get("throttled", {}).get(v)
        if not samples:
            continue
        first_text = samples[0]["startup"]["marks"]["first_text"]
        for r in samples[0]["responses"]:
            if kind_of(r["path"]) == "runtime" and r["t_request"] <= first_text and r["body_bytes"] >= 10_000:
                lines.append(f"| {v} | {r['path'].rsplit('/', 1)[-1]} | {r.get('content_encoding') or 'identity'} | "
                             f"{r['body_bytes']:,} | {r.get('decoded_bytes', r['body_bytes']):,} |")
    return "\n".join(lines)


def cdp_verdict(p: dict) -> str:
    """What the probe says of the DevTools emulation, in a sentence."""
    row = p["modes"]["cdp"]
    slow = [k for k, v in row.items() if v["throttled"]]
    fast = [k for k, v in row.items() if not v["throttled"]]
    counted = [k for k, v in row.items() if v["counted_bytes"] is not None]
    missed = [k for k, v in row.items() if v["counted_bytes"] is None]
    out = "In this run the emulation slowed: " + ("; ".join(slow) or "none of the fetches")
    out += (f" (not: {'; '.join(fast)})" if fast else "") + ". The page's DevTools session reported the bytes of: "
    out += ("; ".join(counted) or "none of them") + (f" (not of: {'; '.join(missed)})" if missed else "") + "."
    return out


def probe_table(p: dict) -> str:
    modes = {"direct": "direct (no throttle)", "cdp": "DevTools emulation on the page target",
             "proxy": "throttle_proxy.py"}
    labels = list(next(iter(p["modes"].values())))
    lines = [f"{p['bytes'] / 1e6:.0f} MB, {p['mbit']:g} Mbit/s ({p['transfer_ms']:.0f} ms alone, "
             f"{2 * p['transfer_ms']:.0f} ms for two at once on one link), {p['rtt_ms']:g} ms round trip. "
             "ms per fetch; in brackets the bytes (head + body) that way of counting reported for it (DevTools: "
             "the page session's Network.loadingFinished encodedDataLength; proxy: its own count; –: none).", "",
             "| fetch by | " + " | ".join(modes[m] for m in p["modes"]) + " |",
             "| --- | " + " | ".join("--:" for _ in p["modes"]) + " |"]
    for label in labels:
        cells = []
        for m, row in p["modes"].items():
            c = row[label]
            cell = f"{c['ms']:,.0f}" + ("" if m == "direct" or c["throttled"] else " (not throttled)")
            if m != "direct":
                cell += " [–]" if c["counted_bytes"] is None else f" [{c['counted_bytes']:,}]"
            cells.append(cell)
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


DOC_TEMPLATE = """# Cold start over a throttled network

Written by `{command}` on {generated} in {minutes:.1f} min{smoke} (raw samples and every response:
[benchmarks/results/network_start.json](../benchmarks/results/network_start.json)). Machine: {machine}; {browser}.
clip-web and transformers.js {tjs_version} on the same model files, {threads} threads each, every
sample a page load in a fresh browser context (empty HTTP cache and Cache Storage).

## How the network is made

A reverse proxy (`benchmarks/throttle_proxy.py`) stands between Chromium and the benchmark's
`clip-web serve`: {mbit:g} Mbit/s in each direction, shared by every connection of the page (one
token bucket per direction, 64 kB burst), and {rtt_ms:g} ms per round trip, once for each new
connection (TCP's handshake) and once for each request before it is forwarded. It throttles at the
socket, so the page, its workers and their workers are slowed alike, and it counts every response
as it went out. The DevTools protocol's `Network.emulateNetworkConditions`, set on the page's
target, was measured beside it and not used:

{probe}

{cdp_verdict} Our page fetches from two dedicated workers (Pyodide, onnxruntime-web), and
onnxruntime-web's threads are workers of the onnxruntime worker: throttling and counting at the
proxy is the way that holds for every request of both contenders alike.

Compression: our server sends brotli 11 copies of Pyodide's and onnxruntime-web's JS, wasm and
JSON ([compressed-assets.md](compressed-assets.md)); transformers.js's library sits under
`/models/`, which our server sends identity, so the proxy sends brotli 11 copies of its
`transformers.min.js` and onnxruntime-web `.mjs`/`.wasm` (variant `tjs`; `tjs_identity` without)
when the browser accepts br, as a compressing CDN would: {tjs_br}. Chromium's Accept-Encoding
here: {accept}. Model files (ONNX, tokenizer, vocab, configs) are identity for both, as a model hub
sends them; wheels and `python_stdlib.zip` are identity (zip archives already).

transformers.js asks for each ONNX file twice (the second a conditional request: 304 on our
server, whose `/models/` files are `Cache-Control: no-cache`) and, in every cold start seen so far,
receives `text_model.onnx` twice in full: column "downloaded again" below. Not the proxy's doing:
checked by hand on 2026-12-01 (tiny model), the server's own log shows two 200s for
`text_model.onnx` straight from the server with no throttle and with the DevTools emulation, and
another server sending the model files `public, max-age=31536000, immutable` got two full GETs as
well. Our page fetches each model file once (into Cache Storage).

## Variants

```text
{variants}```

## Results
{tables}

### Runtime files of one throttled cold start ({first_key}, files of 10 kB and more)

{runtime_files}
"""


def write_doc(results: dict, path: Path) -> None:
    cfg = results["settings"]
    m = results["machine"]
    first_key = next(iter(results["runs"]))
    smoke = (" — a smoke run (1 round): numbers prove the harness works, not the comparison"
             if cfg["rounds"] == 1 else "")
    tjs_br = ", ".join(f"{x['file']} {x['identity']:,} -> {x['br']:,} bytes" for x in results["tjs_brotli"])
    text = DOC_TEMPLATE.format(
        command=results["command"], generated=results["generated"], minutes=results["duration_s"] / 60, smoke=smoke,
        machine=f"{m['cpu']}, {m['cores']} cores, load average at start "
                + ", ".join(f"{x:.1f}" for x in m.get("loadavg_at_start") or []),
        browser=m.get("browser", ""), tjs_version=results["library"].get("version", ""), threads=cfg["threads"],
        mbit=cfg["mbit"], rtt_ms=cfg["rtt_ms"], probe=probe_table(results["probe"]), tjs_br=tjs_br,
        cdp_verdict=cdp_verdict(results["probe"]),
        accept=", ".join(f"`{a}`" for a in sorted({a for s in results["summary"].values() for e in s.values()
                                                     for a in (e.get("bytes") or {}).get("accept_encoding", [])})) or "–",
        variants=__doc__.split("Variants", 1)[1].split("Model files", 1)[0].split("\n", 1)[1],
        tables=tables(results["summary"], cfg), first_key=first_key,
        runtime_files=runtime_files(results["runs"][first_key]))
    path.write_text(text)


# -------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(compare.KINDS), choices=compare.KINDS)
    ap.add_argument("--dtypes", nargs="+", default=list(compare.DTYPES), choices=compare.DTYPES)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mbit", type=float, default=50.0, help="link rate, each direction (Mbit/s)")
    ap.add_argument("--rtt-ms", type=float, default=40.0, help="round trip time (ms)")
    ap.add_argument("--no-loopback", action="store_true", help="skip the unthrottled reference loads")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--docs", type=Path, default=DOC, help="the Markdown report ('' for none)")
    args = ap.parse_args()
    cfg = dict(kinds=args.kinds, dtypes=args.dtypes, variants=args.variants, rounds=args.rounds, threads=args.threads,
               mbit=args.mbit, rtt_ms=args.rtt_ms, loopback=not args.no_loopback)
    t_start = time.time()
    machine = compare.machine_info()
    compare.log(f"settings: {cfg}")
    compare.log("building the site (models, transformers.js, pages) ...")
    site = build(args.kinds, args.dtypes)
    overlay, tjs_br = tjs_overlay()
    state = {}

    def measure(browser, server_url, kind, dtype, external, console):
        if "proxy" not in state:
            state["browser"] = f"Chromium {browser.version} (headless)"
            state["proxy"] = ThrottleProxy(server_url, mbit=args.mbit, rtt_ms=args.rtt_ms, overlay=overlay)
            state["sizes"] = Sizes(server_url)
            compare.log("probe: is every fetch throttled and counted?")
            state["probe"] = probe(browser, server_url, state["proxy"], args.mbit, args.rtt_ms)
            if not (state["probe"]["proxy_throttles_all"] and state["probe"]["proxy_counts_all"]):
                raise SystemExit(f"the proxy does not throttle or count every fetch: {state['probe']['modes']['proxy']}")
        return run(browser, server_url, state["proxy"], state["sizes"], kind, dtype, site, cfg, external, console)

    try:
        runs, console = compare.serve_and_run(args.kinds, args.dtypes, measure, prefix="clip-network-")
    finally:
        if "proxy" in state:
            state["proxy"].stop()
    machine["browser"] = state.get("browser", "")
    results = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "duration_s": time.time() - t_start,
               "command": "python benchmarks/network_start.py" + "".join(
                   f" {a}" for a in sys.argv[1:]), "settings": cfg, "machine": machine,
               "library": site["library"], "models": site["ours"], "tjs_brotli": tjs_br, "probe": state["probe"],
               "summary": {k: summarize(v) for k, v in runs.items()}, "runs": runs, "console": console[:50]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(probe_table(results["probe"]))
    print(tables(results["summary"], cfg))
    print(f"\nraw samples: {args.out}")
    if args.docs and str(args.docs) not in ("", "."):
        write_doc(results, args.docs)
        print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
