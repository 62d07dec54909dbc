"""`clip-web index DIR --model ID`: the search page's index of a photo folder, made natively.

For folders too big for a browser tab. The same pyapp preprocessing and the same ONNX image
encoder (under native onnxruntime instead of onnxruntime-web), so the embeddings are the page's
(cosine >= 0.99999); the output is exactly the JSON the page's "Export index" writes, with the paths,
sizes and dates the page sees when it opens the same folder, so its "Import index" keeps the
thumbnails and embeds nothing.

    folder walk (main thread) -> read + decode + preprocess (a pool of N workers)
        -> batches of B through one onnxruntime session -> rows -> checkpoint parts -> OUT

Resumable. Rows go to a checkpoint folder beside the output, OUT.checkpoint/, as numbered part
files, each written whole (temp file + os.replace): `checkpoint.json` says which model (id and the
image encoder's sha256) and which folder it belongs to, `part-NNNNNN.json` holds rows (an embedding
or a decode failure per file, keyed by path + size + lastModified). A rerun loads them and embeds
only the rest; Ctrl-C (SIGINT) or SIGTERM finishes the batch in the model, saves it and exits 130,
so nothing is embedded twice. (A SIGKILL loses the rows since the last save, at most --save-every
images or 10 s.) The output itself is written to a temp file and renamed when complete, so OUT is
always a whole index or absent; the checkpoint is removed once OUT is written.

The file format (version 1), as image-index.js exportIndex writes it, keys in this order:

    {"format": "clip-web-search-index", "version": 1, "model": ID, "embed_dim": D, "name": ROOT,
     "root": ROOT, "created": ISO-8601 UTC with ms, "count": N, "skipped": [{"path", "reason"}],
     "items": [{"path": "ROOT/rel/path.jpg", "size": BYTES, "lastModified": MS,
                "embedding": base64 of D little-endian float32}]}

Embeddings are the encoder's raw output, as the page stores and exports them (it normalises when
it ranks, and on import).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import stat as stat_mod
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .model_tools.common import ToolError, describe_os_error, local_file, need, read_manifest, replace_file, sha256_file

INDEX_FORMAT = "clip-web-search-index"  # image-index.js INDEX_FORMAT
INDEX_VERSION = 1
CHECKPOINT_FORMAT = "clip-web-index-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_HEAD = "checkpoint.json"
PART_RE = re.compile(r"^part-(\d{6})\.json$")
# folder-files.js IMAGE_EXTENSIONS: what the page treats as an image (the rest is "not an image").
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp")

EXIT_INCOMPLETE = 3  # --limit reached: the checkpoint is kept, rerun to continue
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: the same, as shells report a SIGINT


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint")


# --- the folder, as the page lists it ----------------------------------------------------------


@dataclass
class Entry:
    path: str  # "<folder name>/<relative path>", what the page's folder pick gives
    file: str  # where it is on this machine
    size: int
    last_modified: int  # ms since the epoch, as File.lastModified

    @property
    def key(self) -> tuple:
        return (self.path, self.size, self.last_modified)


def js_order(path: str) -> bytes:
    """Sort key equal to JavaScript's `a < b` on strings (UTF-16 code units, not code points)."""
    return path.encode("utf-16-be", "surrogatepass")


def extension_of(path: str) -> str:
    name = path[path.rfind("/") + 1:]
    dot = name.rfind(".")
    return name[dot + 1:].lower() if dot > 0 else ""


def _hidden(path: str) -> bool:
    # folder-files.js: dotfiles (.DS_Store, ._IMG_1.jpg) are metadata, skipped quietly.
    return any(part.startswith(".") for part in path.split("/"))


def list_folder(folder: Path, exclude: tuple[Path, ...] = ()) -> tuple[str, list[Entry], list[dict]]:
    """(root, images sorted by path, skipped [{path, reason}] sorted by path), as the page's
    classify() makes them from a directory pick. `exclude`: our own output and checkpoint."""
    folder = Path(folder).resolve()
    root = folder.name
    excluded = {p.resolve() for p in exclude}
    images: list[Entry] = []
    skipped: list[dict] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() not in excluded)
        for name in filenames:
            file = here / name
            if file.resolve() in excluded:
                continue
            path = f"{root}/{file.relative_to(folder).as_posix()}"
            if _hidden(path):
                continue
            try:
                st = os.stat(file)
            except OSError as exc:
                skipped.append({"path": path, "reason": f"could not read the file ({exc.strerror or exc})"})
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                continue  # sockets, FIFOs, devices: not files a browser lists
            ext = extension_of(path)
            if ext in IMAGE_EXTENSIONS:
                images.append(Entry(path, str(file), st.st_size, st.st_mtime_ns // 1_000_000))
            else:
                skipped.append({"path": path, "reason": f"not an image (.{ext})" if ext else "not an image (no extension)"})
    images.sort(key=lambda e: js_order(e.path))
    skipped.sort(key=lambda s: js_order(s["path"]))
    return root, images, skipped


# --- the model ---------------------------------------------------------------------------------


@dataclass
class Model:
    id: str  # the id the page knows the model by (and writes into its exports)
    folder: Path
    manifest: dict
    image_file: Path
    image_sha256: str


def _local_models(models_dir: Path) -> list[tuple[Path, dict]]:
    from .models import local_manifest_paths

    out = []
    for path in local_manifest_paths(models_dir):
        try:
            out.append((path.parent, read_manifest(path.parent)))
        except ToolError:
            continue
    return out


def _models_cache() -> Path:
    from .settings import CHECKOUT, user_cache_dir

    return CHECKOUT / ".cache" / "models" if CHECKOUT else user_cache_dir() / "models"


def resolve_model(what: str, models_dir: Path | None = None, log=lambda msg: None) -> Model:
    """--model: a model folder (with manifest.json), a model id in --models-dir (what `serve
    --models-dir` lists), or a preset id (its files are mirrored once with `models pull`, into
    --models-dir if given, else the cache folder; the export then carries the preset's id, the
    one the page loads it by)."""
    from .model_tools.pull import presets, pull

    path = Path(what)
    if path.is_dir():
        manifest = read_manifest(path)
        model_id, folder = manifest["id"], path
    else:
        local = _local_models(models_dir) if models_dir and Path(models_dir).is_dir() else []
        by_id = [(f, m) for f, m in local if m["id"] == what]
        if by_id:
            folder, manifest = by_id[0]
            model_id = what
        elif what in presets():
            mirrors = [(f, m) for f, m in local if m.get("mirror_of") == what]
            if mirrors:
                folder, manifest = mirrors[0]
            else:
                target = Path(models_dir) if models_dir else _models_cache()
                log(f"{what}: fetching its files into {target} (once; `clip-web models pull` resumes them)")
                pull(what, target, log=log)
                folder = target / what
                manifest = read_manifest(folder)
            model_id = what
        else:
            where = f" or in {models_dir}" if models_dir else ""
            raise ToolError(f"--model {what}: not a model folder, a preset ({', '.join(presets())}){where}")
    image_file = local_file(folder, manifest, "image")
    return Model(model_id, Path(folder).resolve(), manifest, image_file, sha256_file(image_file))


class Encoder:
    """The image encoder under native onnxruntime, fed and read by the manifest's names."""

    def __init__(self, model: Model, threads: int = 0):
        ort = need("onnxruntime", feature="clip-web index")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        spec = model.manifest["image"]
        try:
            self.session = ort.InferenceSession(str(model.image_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise ToolError(f"{model.image_file}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if spec["input"] not in inputs or spec["output"] not in outputs:
            raise ToolError(f"{model.image_file}: the model has inputs {inputs} and outputs {outputs}, but the "
                            f"manifest says input {spec['input']!r} and output {spec['output']!r}")
        self.input, self.output = spec["input"], spec["output"]
        self.dtype = np.float16 if spec["input_dtype"] == "float16" else np.float32
        self.runs = 0

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 3, size, size) float32 -> (n, d) float32."""
        out = self.session.run([self.output], {self.input: pixels.astype(self.dtype, copy=False)})[0]
        self.runs += 1
        return np.asarray(out, dtype=np.float32).reshape(len(pixels), -1)


def floats_to_base64(v: np.ndarray) -> str:
    """query.js floatsToBase64: little-endian float32 bytes, base64."""
    return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")


def base64_to_floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")


# --- decoding, in the worker pool --------------------------------------------------------------


def _ignore_sigint() -> None:  # process-pool workers: Ctrl-C is the parent's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def prepare(file: str, rules):
    """One file -> (3, size, size) float32 pixel values by the manifest's rules
    (pyapp.pipeline.ImageRules), or the reason it is skipped (a string)."""
    from pyapp.errors import ClipWebError
    from pyapp.preprocess import preprocess_image

    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as exc:  # image-index.js prepare(): the same words
        return f"could not read the file ({exc.strerror or exc})"
    try:
        return preprocess_image(data, rules=rules)[0]
    except ClipWebError as exc:
        return str(exc)  # the message the page shows and lists for the file
    except Exception as exc:  # noqa: BLE001 - anything else Pillow raises: still this file's fault
        return f"The image can't be decoded ({type(exc).__name__}: {exc})."


# --- the checkpoint ----------------------------------------------------------------------------


def _write_file(path: Path, data: bytes) -> None:
    """Every byte we write goes through here (tests make it fail to simulate a full disk)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    replace_file(path, data, write=_write_file)  # _write_file looked up now: tests replace it


def _ours(name: str) -> bool:
    return name == CHECKPOINT_HEAD or bool(PART_RE.match(name)) or (name.startswith(".") and ".tmp-" in name)


class Checkpoint:
    """OUT.checkpoint/: checkpoint.json + part-NNNNNN.json files (see the module doc)."""

    def __init__(self, path: Path, head: dict):
        self.path = path
        self.head = head
        self.rows: dict[tuple, dict] = {}
        self.next_part = 1

    @staticmethod
    def _refuse(path: Path, problem: str) -> ToolError:
        return ToolError(f"{path}: {problem}. Delete it (rm -r {path}) or rerun with --restart to start over.")

    @classmethod
    def open(cls, path: Path, head: dict, restart: bool = False, log=lambda msg: None) -> tuple["Checkpoint", int]:
        """The checkpoint for this run (head: format, model, folder...), and how many rows it
        brought. Refuses a foreign, damaged or mismatched one with a sentence saying what to do."""
        if path.exists() or path.is_symlink():
            if not path.is_dir() or path.is_symlink():
                raise ToolError(f"{path} exists and is not a clip-web index checkpoint folder; move it away "
                                "or choose another --out")
            foreign = sorted(n for n in os.listdir(path) if not _ours(n))
            if foreign:
                raise ToolError(f"{path} is not a clip-web index checkpoint (it holds {foreign[0]!r}, which "
                                "this command never writes); move it away or choose another --out")
            if restart:
                shutil.rmtree(path)
                log(f"--restart: removed the checkpoint {path}")
        cp = cls(path, head)
        if not path.exists():
            path.mkdir(parents=True)
            _atomic_write(path / CHECKPOINT_HEAD, (json.dumps(head, indent=1) + "\n").encode())
            return cp, 0
        cp._load()
        return cp, len(cp.rows)

    def _load(self) -> None:
        path = self.path
        for name in os.listdir(path):
            if name.startswith(".") and ".tmp-" in name:
                (path / name).unlink(missing_ok=True)  # a write cut short by a kill: never renamed in
        try:
            head = json.loads((path / CHECKPOINT_HEAD).read_text())
        except FileNotFoundError:
            raise self._refuse(path, f"not a clip-web index checkpoint (no {CHECKPOINT_HEAD})") from None
        except (OSError, ValueError) as exc:
            raise self._refuse(path, f"the checkpoint is damaged ({CHECKPOINT_HEAD}: {exc})") from exc
        if not isinstance(head, dict) or head.get("format") != CHECKPOINT_FORMAT:
            raise self._refuse(path, f"not a clip-web index checkpoint ({CHECKPOINT_HEAD} has another format)")
        if head.get("version") != CHECKPOINT_VERSION:
            raise self._refuse(path, f"a checkpoint of format version {head.get('version')!r}; this clip-web "
                                     f"reads version {CHECKPOINT_VERSION}")
        want = self.head
        if (head.get("model"), head.get("image_sha256")) != (want["model"], want["image_sha256"]):
            same_id = head.get("model") == want["model"]
            what = (f"another build of the model {want['model']!r} (image encoder sha256 "
                    f"{str(head.get('image_sha256'))[:12]}..., this one {want['image_sha256'][:12]}...)"
                    if same_id else f"the model {head.get('model')!r}, not {want['model']!r}")
            raise ToolError(f"{path}: this checkpoint was made with {what}; its embeddings cannot be mixed "
                            f"with this model's. Rerun with that model to finish it, or with --restart to "
                            f"discard it and start over.")
        if head.get("folder") != want["folder"] or head.get("root") != want["root"]:
            raise ToolError(f"{path}: this checkpoint is for the folder {head.get('folder')}, not "
                            f"{want['folder']}. Index that folder to finish it, choose another --out, or "
                            f"rerun with --restart to discard it.")
        d = want["embed_dim"]
        parts = sorted(n for n in os.listdir(path) if PART_RE.match(n))
        for name in parts:
            try:
                part = json.loads((path / name).read_text())
                if not isinstance(part, dict) or part.get("format") != CHECKPOINT_FORMAT + "-part" \
                        or part.get("model") != want["model"] or not isinstance(part.get("rows"), list):
                    raise ValueError("not a part of this checkpoint")
                for row in part["rows"]:
                    key = (str(row["path"]), int(row["size"]), int(row["lastModified"]))
                    if "embedding" in row:
                        n = len(base64_to_floats(row["embedding"]))
                        if n != d:
                            raise ValueError(f"{row['path']}: an embedding of {n} values, the model gives {d}")
                    elif not isinstance(row.get("error"), str):
                        raise ValueError(f"{row['path']}: a row with neither an embedding nor an error")
                    self.rows[key] = row
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise self._refuse(path, f"the checkpoint is damaged ({name}: {exc})") from exc
            self.next_part = max(self.next_part, int(PART_RE.match(name).group(1)) + 1)

    def save(self, rows: list[dict]) -> None:
        if not rows:
            return
        part = {"format": CHECKPOINT_FORMAT + "-part", "model": self.head["model"], "rows": rows}
        _atomic_write(self.path / f"part-{self.next_part:06d}.json", json.dumps(part, separators=(",", ":")).encode())
        self.next_part += 1
        for row in rows:
            self.rows[(row["path"], row["size"], row["lastModified"])] = row

    def remove(self) -> None:
        for name in os.listdir(self.path):
            if _ours(name):
                (self.path / name).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass


# --- progress ----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """`index: 1200/50000 images  35.2 images/s  23m05s left  (3 skipped)` on stderr: rewritten in
    place on a terminal, a new line every `every` seconds on a pipe or log."""

    def __init__(self, total: int, stream=None, every: float = 2.0, quiet: bool = False):
        self.total, self.quiet, self.every = total, quiet, every
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.times: deque = deque(maxlen=64)  # (time, images embedded so far)
        self.last = 0.0

    def line(self, done: int, embedded: int, skipped: int) -> str:
        now = time.monotonic()
        self.times.append((now, embedded))
        rate = 0.0
        (t0, n0), (t1, n1) = self.times[0], self.times[-1]
        if t1 > t0 and n1 > n0:
            rate = (n1 - n0) / (t1 - t0)
        left = self.total - done
        eta = _duration(left / rate) if rate > 0 and left > 0 else ("0s" if left == 0 else "?")
        return (f"index: {done}/{self.total} images  {rate:.1f} images/s  {eta} left"
                + (f"  ({skipped} skipped)" if skipped else ""))

    def __call__(self, done: int, embedded: int, skipped: int, final: bool = False) -> None:
        text = self.line(done, embedded, skipped)
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            if final or now - self.last > 0.2:
                self.last = now
                self.stream.write(f"\r{text}\x1b[K" + ("\n" if final else ""))
                self.stream.flush()
        elif final or now - self.last >= self.every:
            self.last = now
            print(f"clip-web: {text}", file=self.stream, flush=True)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Stop:
    """Set by a signal handler (or a test): the run saves what it has and returns."""
    requested: bool = False
    reason: str = ""


@dataclass
class Result:
    out: Path
    complete: bool
    images: int = 0  # image files in the folder
    count: int = 0  # items in the index (or in the checkpoint so far)
    embedded: int = 0  # through the model in this run
    runs: int = 0  # onnxruntime runs in this run
    reused: int = 0  # rows the checkpoint already had
    failed: int = 0  # images that could not be decoded (in skipped)
    skipped: int = 0  # everything in skipped (failed + not images)
    seconds: float = 0.0
    setup_seconds: float = 0.0  # listing, session creation, checkpoint: before the first decode
    stopped: str = ""
    skipped_list: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "skipped_list"}


def _write_index(out: Path, head: dict, items: list[dict]) -> None:
    """OUT, whole or not at all: streamed into a temp file beside it, then renamed over it."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    # JSON.stringify: no spaces, non-ASCII as is; the head's keys first, then the items.
    dumps = lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=False)  # noqa: E731
    try:
        with open(tmp, "wb") as f:
            _write_chunk(f, (dumps(head)[:-1] + ',"items":[').encode())
            chunks: list[str] = []
            for k, row in enumerate(items):
                chunks.append(("," if k else "") + dumps(row))
                if len(chunks) >= 500:
                    _write_chunk(f, "".join(chunks).encode())
                    chunks = []
            chunks.append("]}")
            _write_chunk(f, "".join(chunks).encode())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_chunk(f, data: bytes) -> None:
    """The output's writer (tests make it fail to simulate a full disk)."""
    f.write(data)


def build_index(folder: Path, model: Model, out: Path, *, workers: int = 2, threads: int = 0, batch: int = 16,
                pool: str = "thread", restart: bool = False, limit: int | None = None, save_every: int = 256,
                stop: Stop | None = None, progress: Progress | None = None, quiet: bool = False,
                log=lambda msg: None) -> Result:
    t_start = time.monotonic()
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such folder")
    if workers < 1 or batch < 1 or threads < 0 or (limit is not None and limit < 0) or save_every < 1:
        raise ToolError("--workers, --batch and --save-every must be at least 1, --threads and --limit at least 0")
    stop = stop or Stop()
    cp_path = checkpoint_path(out)
    root, images, not_images = list_folder(folder, exclude=(out, cp_path))
    if not root:
        raise ToolError(f"{folder}: index a folder, not the file system's root")
    if root.startswith("."):
        log(f"note: {root} starts with a dot; the page skips hidden folders, so it would list nothing here")
    m = model.manifest
    encoder = Encoder(model, threads=threads)
    d = int(m["embed_dim"])
    head = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.id,
            "image_sha256": model.image_sha256, "embed_dim": d, "folder": str(folder), "root": root,
            "index": out.name}
    checkpoint, loaded = Checkpoint.open(cp_path, head, restart=restart, log=log)

    todo = [e for e in images if e.key not in checkpoint.rows]
    reused = len(images) - len(todo)
    if loaded:
        log(f"resuming from {cp_path}: {reused} of {len(images)} images already done")
    result = Result(out=out, complete=False, images=len(images), reused=reused,
                    setup_seconds=time.monotonic() - t_start)
    progress = progress or Progress(len(images), quiet=quiet)
    from pyapp.pipeline import image_rules

    rules = image_rules(m)

    unsaved: list[dict] = []
    last_save = time.monotonic()
    done = reused
    failed_now = 0

    def save(force: bool = False) -> None:
        nonlocal unsaved, last_save
        if unsaved and (force or len(unsaved) >= save_every or time.monotonic() - last_save >= 10):
            checkpoint.save(unsaved)
            unsaved = []
            last_save = time.monotonic()

    def run_batch(ready: list) -> None:
        nonlocal done
        embeds = encoder(np.stack([p for _, p in ready]))  # (n, 3, s, s) -> (n, d)
        if embeds.shape[1] != d:
            raise ToolError(f"{model.image_file}: the encoder gives {embeds.shape[1]} values, the manifest "
                            f"says embed_dim {d}")
        for (e, _), v in zip(ready, embeds):
            unsaved.append({"path": e.path, "size": e.size, "lastModified": e.last_modified,
                            "embedding": floats_to_base64(v)})
        result.embedded += len(ready)
        done += len(ready)

    executor = (ProcessPoolExecutor(workers, initializer=_ignore_sigint) if pool == "process"
                else ThreadPoolExecutor(workers, thread_name_prefix="clip-web-decode"))
    window = workers * 2 + batch  # decodes in flight or waiting: the model never waits, memory stays bounded
    inflight: deque = deque()
    pending = iter(todo)
    budget = len(todo) if limit is None else min(limit, len(todo))
    submitted = 0
    try:
        progress(done, result.embedded, len(not_images) + failed_now)
        ready: list = []
        while True:
            while not stop.requested and submitted < budget and len(inflight) < window:
                e = next(pending)
                inflight.append((e, executor.submit(prepare, e.file, rules)))
                submitted += 1
            if stop.requested or not inflight:
                break  # (a stop drops the decodes in flight: they stay to do, each once)
            e, future = inflight.popleft()
            value = future.result()
            if isinstance(value, str):
                unsaved.append({"path": e.path, "size": e.size, "lastModified": e.last_modified, "error": value})
                failed_now += 1
                done += 1
            else:
                ready.append((e, value))
            if len(ready) >= batch or (ready and not inflight):
                run_batch(ready)
                ready = []
            save()
            progress(done, result.embedded, len(not_images) + failed_now)
        if ready:  # decoded before a stop: embedded and saved, not thrown away
            run_batch(ready)
            ready = []
    finally:
        for _, future in inflight:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        try:
            save(force=True)
        except OSError as exc:
            raise ToolError(describe_os_error(exc, f"saving the checkpoint {cp_path}") +
                            "; the images embedded since the last save will be embedded again") from exc
    result.runs = encoder.runs
    progress(done, result.embedded, len(not_images) + failed_now, final=True)

    rows = checkpoint.rows
    keys = [e.key for e in images]
    finished = all(k in rows for k in keys)
    items = [rows[k] for k in keys if k in rows and "embedding" in rows[k]]
    failed = [{"path": rows[k]["path"], "reason": rows[k]["error"]} for k in keys if k in rows and "error" in rows[k]]
    skipped = sorted(not_images + failed, key=lambda s: js_order(s["path"]))
    result.count, result.failed, result.skipped, result.skipped_list = len(items), len(failed), len(skipped), skipped
    result.seconds = time.monotonic() - t_start
    if not finished:
        result.stopped = stop.reason or ("limit" if limit is not None else "stopped")
        return result

    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    index_head = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "model": model.id,
                  "embed_dim": d if items else 0, "name": root, "root": root, "created": created,
                  "count": len(items), "skipped": skipped}
    try:
        _write_index(out, index_head, [{k: r[k] for k in ("path", "size", "lastModified", "embedding")} for r in items])
    except OSError as exc:
        raise ToolError(describe_os_error(exc, f"writing {out}").replace("partial output was removed",
                        f"{out} was not written (nothing half-written is left)") +
                        f"; the checkpoint {cp_path} is kept: rerun the same command to write it") from exc
    checkpoint.remove()
    result.complete = True
    result.seconds = time.monotonic() - t_start
    return result


# --- the command -------------------------------------------------------------------------------


def default_out(folder: Path) -> Path:
    """The page's download name: `<name with [^\\w.-] as _>.clip-index.json`, here in the cwd."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(folder).resolve().name or "images")
    return Path.cwd() / f"{name}.clip-index.json"


def _log(msg: str) -> None:
    print(f"clip-web: {msg}", file=sys.stderr, flush=True)


def cmd_index(args) -> int:
    stop = Stop()
    previous = {}

    def on_signal(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (rows not yet saved are redone)
        stop.requested = True
        stop.reason = "interrupted"
        _log("stopping: finishing the batch in the model and saving the checkpoint (Ctrl-C again to quit now)")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        folder = Path(args.dir)
        if not folder.is_dir():
            raise ToolError(f"{args.dir}: no such folder")
        out = Path(args.out) if args.out else default_out(folder)
        models_dir = Path(args.models_dir) if args.models_dir else None
        if models_dir is None:
            from .settings import Settings
            models_dir = Settings().models_dir
        model = resolve_model(args.model, models_dir, log=_log)
        result = build_index(folder, model, out, workers=args.workers, threads=args.threads, batch=args.batch,
                             pool=args.pool, restart=args.restart, limit=args.limit, save_every=args.save_every,
                             stop=stop, quiet=args.quiet, log=_log)
    except ToolError as exc:
        print(f"clip-web: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"clip-web: error: {describe_os_error(exc, 'indexing')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clip-web: error: interrupted; the checkpoint keeps what was saved, rerun to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rate = result.embedded / result.seconds if result.seconds > 0 else 0.0
    summary = (f"embedded {result.embedded} images in {result.runs} onnxruntime runs ({rate:.1f} images/s), "
               f"{result.reused} from the checkpoint, {result.skipped} skipped ({result.failed} unreadable)")
    print(json.dumps(result.as_dict()), flush=True)
    if result.complete:
        _log(f"{summary}; wrote {result.out} ({result.count} images, model {model.id})")
        return 0
    _log(f"{summary}; {result.stopped}: {result.count} of {result.images} images so far, kept in "
         f"{checkpoint_path(result.out)}; rerun the same command to continue")
    return EXIT_INTERRUPTED if result.stopped == "interrupted" else EXIT_INCOMPLETE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "index", help="index a photo folder natively into the search page's index format (resumable)",
        description="Embed every image in DIR with the same preprocessing and ONNX image encoder as the "
        "search page, under native onnxruntime, and write the JSON the page's \"Export index\" writes (the "
        "page's \"Import index\" reads it; opening the same folder then keeps thumbnails and embeds nothing). "
        "Resumable: progress is saved in OUT.checkpoint/ and a rerun of the same command continues; Ctrl-C "
        "saves and exits 130. Exit status 3: --limit reached (rerun to continue).")
    p.add_argument("dir", metavar="DIR", help="the photo folder")
    p.add_argument("--model", required=True, help="a preset id, a model folder (with manifest.json), or the id "
                   "of a model in --models-dir")
    p.add_argument("--out", help="the index file to write (default: ./<folder name>.clip-index.json, the page's "
                   "download name)")
    p.add_argument("--models-dir", help="a local models folder to find --model in (as `serve --models-dir`); "
                   "a preset's files are mirrored here (default: the cache folder)")
    p.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="parallel decoders (default: CPUs, at most 4)")
    p.add_argument("--pool", choices=("thread", "process"), default="thread",
                   help="decode in threads (default; Pillow and numpy release the GIL) or processes")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default, all cores)")
    p.add_argument("--batch", type=int, default=16, help="images per onnxruntime run (default 16)")
    p.add_argument("--limit", type=int, help="decode and embed at most this many more image files in this run, then save and stop "
                   "(exit status 3; rerun to continue)")
    p.add_argument("--save-every", type=int, default=256, help="save the checkpoint after this many images (and "
                   "every 10 s)")
    p.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_index)
