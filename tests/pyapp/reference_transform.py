"""The oracle: OpenAI CLIP's image transform, written from torchvision's documented semantics.

OpenAI CLIP (clip/clip.py `_transform(n_px)`) is
    Compose([Resize(n_px, interpolation=BICUBIC), CenterCrop(n_px), _convert_image_to_rgb,
             ToTensor(), Normalize(OPENAI_MEAN, OPENAI_STD)])
applied to `Image.open(f)` as is. torchvision can't be imported beside this project's CPU torch, so
`reference_preprocess` restates each step plainly (PIL for the geometry, torch for ToTensor/Normalize),
step by step as torchvision documents and implements them, without sharing code with pyapp.

When a real torchvision is at hand, `load_torchvision_preprocess()` builds the genuine Compose and
the tests check this oracle against it: either `import torchvision` works, or the environment variable
CLIP_WEB_TORCHVISION_DIR points at an unpacked torchvision wheel (the folder holding `torchvision/`),
whose pure-Python transforms we load without its compiled ops, e.g.
    pip download --no-deps torchvision==0.28.0 -d /tmp/tv && cd /tmp/tv && python -m zipfile -e *.whl .
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
# The genuine article, when available
# --------------------------------------------------------------------------------------------------


def _import_torchvision_transforms():
    try:
        import torchvision.transforms as T  # noqa: PLC0415

        return T
    except Exception:  # noqa: BLE001 - torchvision wheels often fail to load their ops beside another torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    root = os.environ.get("CLIP_WEB_TORCHVISION_DIR")
    if not root or not os.path.isfile(os.path.join(root, "torchvision", "transforms", "functional.py")):
        return None
    # A bare package object stands in for torchvision/__init__.py, which loads compiled ops; the
    # transforms themselves are pure Python (PIL + torch).
    pkg = types.ModuleType("torchvision")
    pkg.__path__ = [os.path.join(root, "torchvision")]
    sys.modules["torchvision"] = pkg
    import torchvision.transforms as T  # noqa: PLC0415

    return T


def load_torchvision_preprocess(size: int = 224):
    """OpenAI CLIP's `_transform(size)` built from real torchvision, or None if it can't be loaded."""
    T = _import_torchvision_transforms()
    if T is None:
        return None
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            lambda image: image.convert("RGB"),
            T.ToTensor(),
            T.Normalize(OPENAI_MEAN, OPENAI_STD),
        ]
    )
