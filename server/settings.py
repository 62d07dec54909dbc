"""All server settings in one object, filled from CLI flags or CLIP_WEB_* environment variables,
and where the server finds its own files.

Two ways to run, one layout each:

    a git checkout (`make run`, `pip install -e .`)     an installed wheel (`pip install .`, pipx)
      <repo>/web/            the pages                    site-packages/server/web/
      <repo>/server/presets/ model presets                site-packages/server/presets/
      <repo>/pyapp/          pyapp's sources              site-packages/pyapp/
      <repo>/.assets/        the asset cache              the user's cache dir: ~/.cache/clip-web/assets
                                                          ($XDG_CACHE_HOME, ~/Library/Caches, %LOCALAPPDATA%)

CLIP_WEB_ASSETS overrides the asset cache either way. The build maps the top-level web/ into the
wheel as server/web (pyproject.toml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The folder holding server/ and pyapp/: the repository in a checkout, site-packages when installed.
REPO_ROOT = PACKAGE_DIR.parent


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "web" / "index.html").is_file()


CHECKOUT: Path | None = REPO_ROOT if _is_checkout(REPO_ROOT) else None
WEB_DIR = CHECKOUT / "web" if CHECKOUT else PACKAGE_DIR / "web"
PRESETS_DIR = PACKAGE_DIR / "presets"
PYAPP_DIR = REPO_ROOT / "pyapp"  # one wheel installs pyapp beside server


def user_cache_dir() -> Path:
    """This user's cache folder for clip-web, by platform convention."""
    from platformdirs import user_cache_path  # only needed outside a checkout

    return user_cache_path("clip-web", appauthor=False)


def default_assets_dir() -> Path:
    value = os.environ.get("CLIP_WEB_ASSETS")
    if value:
        return Path(value).resolve()
    return CHECKOUT / ".assets" if CHECKOUT else user_cache_dir() / "assets"


def package_version() -> str:
    """clip-web's version: pyproject.toml's in a checkout (it may be ahead of an editable install's
    metadata), the installed distribution's otherwise."""
    if CHECKOUT:
        import tomllib

        return tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["version"]
    from importlib.metadata import version

    return version("clip-web")


def _env_path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


@dataclass
class Settings:
    web_dir: Path = WEB_DIR
    assets_dir: Path = field(default_factory=default_assets_dir)
    presets_dir: Path = PRESETS_DIR
    # A local folder of models (each a subfolder with manifest.json); becomes the default model.
    models_dir: Path | None = field(default_factory=lambda: _env_path("CLIP_WEB_MODELS_DIR", None))
    # Offer first visits the Python memory snapshot `clip-web assets` builds (server/python_snapshot.py).
    python_snapshot: bool = True
    # When set, one JSON line per request is appended here (tests read it to prove privacy).
    request_log: Path | None = field(default_factory=lambda: _env_path("CLIP_WEB_REQUEST_LOG", None))
