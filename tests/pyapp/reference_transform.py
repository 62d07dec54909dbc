"""The oracle: OpenAI CLIP's image transform, written from torchvision's documented semantics.

OpenAI CLIP (clip/clip.py `_transform(n_px)`) is
    Compose([Resize(n_px, interpolation=BICUBIC), CenterCrop(n_px), _convert_image_to_rgb,
             ToTensor(), Normalize(OPENAI_MEAN, OPENAI_STD)])
applied to `Image.open(f)` as is. torchvision can't be imported beside this project's CPU torch, so
`reference_preprocess` restates each step plainly (PIL for the geometry, torch for ToTensor/Normalize),
step by step as torchvision documents and implements them, without sharing code with pyapp.

The tests check this oracle against the genuine Compose built from real torchvision
(`load_torchvision_transforms` + `clip_transform`): the pinned torchvision wheel, fetched and unpacked
by tests/oracles.py into .cache/oracles/, or the unpacked wheel that the environment variable
CLIP_WEB_TORCHVISION_DIR points at (the folder holding `torchvision/`). Its pure-Python transforms are
loaded by path under a stub package, without torchvision/__init__.py and its compiled ops.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import torch
from PIL import Image, ImageOps

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def resize(img: Image.Image, size: int) -> Image.Image:
    """transforms.Resize(size: int, BICUBIC) on a PIL image.

    The shorter edge becomes `size`; the longer is `int(size * long / short)` (torchvision
    `_compute_resized_output_size`). If that is the current size, the image is returned as is.
    Otherwise `img.resize((w, h), BICUBIC)` (torchvision `_functional_pil.resize`), antialiased by Pillow.
    """
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_h, new_w) == (h, w):
        return img
    return img.resize((new_w, new_h), Image.BICUBIC)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """transforms.CenterCrop(size) on a PIL image.

    If the image is smaller than the crop along an edge it is first padded with 0 (left/top get
    (crop - n) // 2, right/bottom (crop - n + 1) // 2; ImageOps.expand, palette kept for "P"); then
    top = int(round((h - size) / 2.0)), left likewise (Python round: half to even), and img.crop.
    """
    w, h = img.size
    if size > w or size > h:
        left = (size - w) // 2 if size > w else 0
        top = (size - h) // 2 if size > h else 0
        right = (size - w + 1) // 2 if size > w else 0
        bottom = (size - h + 1) // 2 if size > h else 0
        fill = 0 if len(img.getbands()) == 1 else (0,) * len(img.getbands())
        palette = img.getpalette() if img.mode == "P" else None
        img = ImageOps.expand(img, border=(left, top, right, bottom), fill=fill)
        if palette is not None:
            img.putpalette(palette)
        w, h = img.size
        if (w, h) == (size, size):
            return img
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_tensor(rgb: Image.Image) -> torch.Tensor:
    """transforms.ToTensor on an 8-bit PIL image: HWC uint8 -> CHW float32, then .div(255)."""
    arr = torch.from_numpy(np.array(rgb, np.uint8, copy=True))
    arr = arr.view(rgb.size[1], rgb.size[0], len(rgb.getbands())).permute(2, 0, 1).contiguous()
    return arr.to(dtype=torch.float32).div(255)


def normalize(t: torch.Tensor, mean, std) -> torch.Tensor:
    """transforms.Normalize: mean/std cast to the tensor's dtype, then sub_(mean).div_(std)."""
    m = torch.as_tensor(mean, dtype=t.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).view(-1, 1, 1)
    return t.clone().sub_(m).div_(s)


def reference_preprocess(img: Image.Image, size: int = 224, mean=OPENAI_MEAN, std=OPENAI_STD) -> np.ndarray:
    """OpenAI CLIP preprocess(img), as float32 numpy (3, size, size)."""
    img = center_crop(resize(img, size), size)
    return normalize(to_tensor(img.convert("RGB")), mean, std).numpy()


# --------------------------------------------------------------------------------------------------
# The genuine article: real torchvision
# --------------------------------------------------------------------------------------------------


TORCHVISION_DIR_ENV_VAR = "CLIP_WEB_TORCHVISION_DIR"


def load_torchvision_transforms(root: str | os.PathLike | None = None):
    """`torchvision.transforms` from an unpacked torchvision wheel; raises if it can't be loaded.

    `root` is the folder holding `torchvision/`; by default $CLIP_WEB_TORCHVISION_DIR, else the pinned
    wheel from tests/oracles.py (downloaded and unpacked on first use; OracleError if that fails).
    """
    source = "given"
    if root is None and os.environ.get(TORCHVISION_DIR_ENV_VAR):
        root, source = os.environ[TORCHVISION_DIR_ENV_VAR], f"from ${TORCHVISION_DIR_ENV_VAR}; fix or unset it"
    if root is None:
        from oracles import torchvision_dir  # noqa: PLC0415 - tests/ is on sys.path (pyproject pythonpath)

        root, source = torchvision_dir(), "from tests/oracles.py; delete it and rerun `python tests/oracles.py`"
    pkg_dir = os.path.join(os.path.abspath(os.fspath(root)), "torchvision")
    if not os.path.isfile(os.path.join(pkg_dir, "transforms", "functional.py")):
        raise FileNotFoundError(
            f"{root} ({source}) is not an unpacked torchvision wheel: no torchvision/transforms/functional.py"
        )
    loaded = sys.modules.get("torchvision")
    if loaded is None:
        # A bare package object stands in for torchvision/__init__.py, which loads compiled ops; the
        # transforms themselves are pure Python (PIL + torch).
        pkg = types.ModuleType("torchvision")
        pkg.__path__ = [pkg_dir]
        sys.modules["torchvision"] = pkg
    elif list(getattr(loaded, "__path__", ())) != [pkg_dir]:
        raise RuntimeError(
            f"another torchvision is already imported ({getattr(loaded, '__path__', loaded)}), "
            f"so the oracle at {pkg_dir} can't be loaded in this process"
        )
    import torchvision.transforms as T  # noqa: PLC0415

    return T


def clip_transform(T, size: int = 224):
    """OpenAI CLIP's `_transform(size)` built from the torchvision transforms module `T`."""
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            lambda image: image.convert("RGB"),
            T.ToTensor(),
            T.Normalize(OPENAI_MEAN, OPENAI_STD),
        ]
    )
