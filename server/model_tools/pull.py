"""Mirror a model (a preset, or any manifest JSON) from the hub into a local models folder.

    DIR/<preset-id>/<file>.onnx, DIR/<preset-id>/manifest.json (relative URLs, sha256, bytes)

so `clip-web serve --models-dir DIR` serves it with no network. Standard library only (urllib).

Downloads go to `<file>.part` and are renamed when complete and verified. An interrupted
download keeps its `.part` ON PURPOSE: the next run (or the next retry in this run) asks for the
rest with an HTTP Range request. A server that ignores Range (200 instead of 206) makes us start
that file over. Files whose size or sha256 disagree with the manifest are deleted, not kept.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlsplit

from ..models import ManifestError, validate_manifest
from ..settings import Settings
from .common import MANIFEST, PARTS, ToolError, sha256_file, write_manifest

HF_BASE = "https://huggingface.co/"
CHUNK = 1 << 16
TIMEOUT_S = 60
USER_AGENT = "clip-web-models-pull/1"

try:  # one downloader per .part file; two appending to it would interleave bytes
    import fcntl
except ImportError:  # not on Windows: the lock is a courtesy, not a correctness guarantee
    fcntl = None


class Interrupted(Exception):
    """The connection ended before the whole file arrived; the .part is kept for a resume."""


def presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(Settings().presets_dir.glob("*.json"))}


def resolve_manifest(what: str) -> dict:
    """A preset id, or a path to a manifest JSON with absolute http(s) URLs."""
    known = presets()
    if what in known:
        path = known[what]
    elif what.endswith(".json") or os.sep in what or "/" in what:
        path = Path(what)
        if not path.is_file():
            raise ToolError(f"{what}: no such manifest file")
    else:
        raise ToolError(f"unknown preset {what!r}; known presets: {', '.join(known)} "
                        "(or give the path of a manifest JSON)")
    try:
        manifest = json.loads(Path(path).read_text())
        validate_manifest(manifest, str(path))
    except (ValueError, ManifestError) as exc:
        raise ToolError(f"{path}: not a valid model manifest ({exc})") from exc
    for part in PARTS:
        if urlsplit(manifest[part]["url"]).scheme not in ("http", "https"):
            raise ToolError(f"{path}: the {part} URL {manifest[part]['url']!r} is not absolute http(s)")
    tokenizer_url = manifest.get("tokenizer", {}).get("url")
    if tokenizer_url and urlsplit(tokenizer_url).scheme not in ("http", "https"):
        raise ToolError(f"{path}: the tokenizer URL {tokenizer_url!r} is not absolute http(s)")
    return manifest


def with_hub(url: str, hub: str | None) -> str:
    """Point huggingface.co URLs at another hub (a mirror, or the tests' stand-in)."""
    if hub and url.startswith(HF_BASE):
        return hub.rstrip("/") + "/" + url[len(HF_BASE):]
    return url


# --- progress --------------------------------------------------------------------------------


class Progress:
    """A one-line bar on a terminal; on a pipe or log file, a line at 0/25/50/75/100 %."""

    def __init__(self, name: str, stream=None, quiet: bool = False):
        self.name, self.quiet = name, quiet
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_quarter = -1

    def __call__(self, done: int, total: int | None, start: int = 0, final: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        rate = (done - start) / max(now - self.t0, 1e-6) / 1e6
        pct = 100.0 * done / total if total else 0.0
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        line = f"{self.name}  {pct:5.1f}%  {size}  {rate:.1f} MB/s"
        if self.tty:
            if final or now - self.last > 0.1:
                self.last = now
                bar = "#" * int(pct / 5)
                self.stream.write(f"\r[{bar:<20}] {line}" + ("\n" if final else ""))
                self.stream.flush()
        else:
            quarter = int(pct // 25) if total else 0
            if final or quarter > self.last_quarter:
                self.last_quarter = quarter
                print(line, file=self.stream, flush=True)


# --- one file --------------------------------------------------------------------------------


def _append(f, chunk: bytes) -> None:
    """The .part writer (kept separate so a test can make the disk look full)."""
    f.write(chunk)


def _content_range_start(header: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", header or "")
    return int(m.group(1)) if m else None


def _fetch_once(url: str, part: Path, expected_bytes: int | None, progress: Progress) -> None:
    """One HTTP request that appends to part; raises Interrupted if the body was cut short."""
    have = part.stat().st_size if part.exists() else 0
    if expected_bytes is not None and have >= expected_bytes:
        if have == expected_bytes:
            return  # finished in an earlier run, before the rename
        part.unlink()  # longer than the file: not ours to resume
        have = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # "Range not satisfiable": the .part is at least the whole file; start it over.
            part.unlink()
            raise Interrupted(f"the server refused to resume {part.name}; starting over") from exc
        raise ToolError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Interrupted(f"cannot reach {url} ({reason})") from exc
    with response:
        start = have
        if have and response.status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != have:
                part.unlink()  # a part of the file, but not the one we asked for
                raise Interrupted(f"the server resumed {part.name} at another offset; starting over")
            mode = "ab"
        else:
            mode, start = "wb", 0  # 200: the server ignored Range and sends the whole file
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else expected_bytes
        done = start
        with open(part, "ab") as f:  # "ab", not "wb": truncate only once we hold the lock
            if fcntl is not None:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    raise ToolError(f"another process is downloading {part}; wait for it to finish") from exc
            if mode == "wb":
                f.truncate(0)
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (HTTPException, OSError) as exc:
                    raise Interrupted(f"connection lost after {done} bytes ({type(exc).__name__})") from exc
                if not chunk:
                    break
                _append(f, chunk)  # an OSError here (full disk) is not a network problem: no retry
                done += len(chunk)
                progress(done, total, start)
        if total is not None and done < total:
            raise Interrupted(f"connection closed after {done} of {total} bytes")
    progress(done, total, start, final=True)


def _verify(part: Path, url: str, sha256: str | None, size: int | None) -> str:
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise ToolError(f"{url}: got {actual_size} bytes, the manifest says {size}; the download was deleted")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise ToolError(f"{url}: sha256 {digest} does not match the manifest's {sha256}; "
                        "the download was deleted")
    return digest


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
             retries: int = 3, quiet: bool = False, stream=None, log=lambda msg: None) -> str:
    """Download url to dest (resuming dest.part), verify, rename; returns the file's sha256."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    progress = Progress(dest.name, stream=stream, quiet=quiet)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, size, progress)
            break
        except Interrupted as exc:
            kept = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                raise ToolError(
                    f"download of {url} interrupted: {exc}. Kept {part} ({kept} bytes): run the same "
                    "command again to resume") from exc
            log(f"{dest.name}: {exc}; resuming from byte {kept} (retry {attempt + 1} of {retries})")
            time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                kept = part.stat().st_size if part.exists() else 0
                raise ToolError(f"no space left on device while downloading {dest.name}. Kept {part} "
                                f"({kept} bytes): free some space and run the same command to resume") from exc
            raise
    digest = _verify(part, url, sha256, size)
    os.replace(part, dest)
    return digest


# --- a whole model ---------------------------------------------------------------------------


def _previous(folder: Path) -> dict:
    """The manifest an earlier pull wrote here (its hashes let us skip files already present)."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def pull(what: str, to: Path, hub: str | None = None, model_id: str | None = None, retries: int = 3,
         quiet: bool = False, stream=None, log=lambda msg: None) -> dict:
    """Mirror a preset (or manifest file) into to/<id>/; returns the local manifest written there."""
    source = resolve_manifest(what)
    # The server refuses two manifests with one id; a mirrored preset would clash with the preset.
    local_id = model_id or (source["id"] + "-local" if source["id"] in presets() else source["id"])
    folder = Path(to) / source["id"]
    fresh = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _pull_into(folder, source, local_id, what, hub, retries, quiet, stream, log)
    except BaseException:
        if fresh and not any(folder.iterdir()):
            folder.rmdir()  # nothing to resume: leave no empty model folder behind
        raise


def _pull_into(folder: Path, source: dict, local_id: str, what: str, hub, retries, quiet, stream, log) -> dict:
    previous = _previous(folder)
    local = dict(source, id=local_id, mirror_of=source["id"])
    local.pop("report", None)
    # The encoders, and the model's own tokenizer file where it has one (SigLIP's spiece.model):
    # a mirror must work with no network.
    parts = [*PARTS, *(["tokenizer"] if source.get("tokenizer", {}).get("url") else [])]
    names = [Path(urlsplit(source[part]["url"]).path).name for part in parts]
    if len(set(names)) != len(names):
        raise ToolError(f"{what}: two of its files have the same name ({', '.join(names)})")
    for part, name in zip(parts, names):
        entry, url = source[part], with_hub(source[part]["url"], hub)
        dest = folder / name
        want_sha, want_size = entry.get("sha256"), entry.get("bytes")
        prev = previous.get(part, {})
        known = want_sha or (prev.get("sha256") if prev.get("url") == name else None)
        if dest.is_file() and known and (want_size is None or dest.stat().st_size == want_size) \
                and sha256_file(dest) == known.lower():
            log(f"{name}: already here, verified")
            digest = known.lower()
        else:
            log(f"{name}: downloading {url}")
            digest = download(url, dest, sha256=want_sha, size=want_size, retries=retries,
                              quiet=quiet, stream=stream, log=log)
        local[part] = dict(entry, url=name, sha256=digest, bytes=dest.stat().st_size)
    write_manifest(folder, local)
    return local
