"""All server settings in one object, filled from CLI flags or CLIP_WEB_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


@dataclass
class Settings:
    web_dir: Path = REPO_ROOT / "web"
    assets_dir: Path = field(default_factory=lambda: _env_path("CLIP_WEB_ASSETS", REPO_ROOT / ".assets"))
    presets_dir: Path = REPO_ROOT / "server" / "presets"
    # A local folder of models (each a subfolder with manifest.json); becomes the default model.
    models_dir: Path | None = field(default_factory=lambda: _env_path("CLIP_WEB_MODELS_DIR", None))
    # Offer first visits the Python memory snapshot `clip-web assets` builds (server/python_snapshot.py).
    python_snapshot: bool = True
    # When set, one JSON line per request is appended here (tests read it to prove privacy).
    request_log: Path | None = field(default_factory=lambda: _env_path("CLIP_WEB_REQUEST_LOG", None))
