"""The SigLIP torch oracle: transformers' own SigLIP, tokenizer and image processor on the tiny model.

    from siglip_reference import TorchSiglip, ensure_siglip_model
    folder = ensure_siglip_model()            # builds once, then cached (.cache/siglip/tiny-siglip)
    sig = TorchSiglip(folder)
    sig.input_ids(texts)                      # SiglipTokenizer, padded to 64 -> (n, 64) int64
    sig.text_embeds(texts)                    # -> (n, 64) float32, get_text_features
    sig.pixel_values(images)                  # SiglipImageProcessorPil -> (n, 3, 224, 224) float32
    sig.image_embeds(images)                  # -> (n, 64) float32, get_image_features
    sig.logits_per_image(images, texts)       # the model's forward: scale * cos + bias, (n_img, n_txt)
    sig.probs(images, texts)                  # sigmoid of those

Embeddings are the raw pooled features (not L2-normalised), like the ONNX models' outputs. The
oracle goes through transformers' public API as a user would, not through build_siglip's wrappers.

Text is tokenized as transformers' docs say (`padding="max_length"`, 64) and embedded from the ids
alone. SiglipTokenizer also returns an attention_mask, and `get_text_features(**inputs)` would use
it: the pooled last position (a pad) would then not see the other pads, which the model (trained
without a mask; open_clip and big_vision pass none) does see. The ONNX graph takes ids only.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import build_siglip  # noqa: E402


def ensure_siglip_model(force: bool = False) -> Path:
    """Folder of the tiny SigLIP (checkpoint/, spiece.model, image.onnx, text.onnx, manifest.json)."""
    return build_siglip.build(force=force)


def _open(image):
    """A PIL image from a PIL image or an encoded file's bytes."""
    from PIL import Image

    return Image.open(io.BytesIO(image)) if isinstance(image, (bytes, bytearray)) else image


class TorchSiglip:
    def __init__(self, folder: Path | str):
        import torch
        from transformers import SiglipImageProcessorPil, SiglipModel, SiglipTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar per load otherwise
        folder = Path(folder)
        self._torch = torch
        with build_siglip.quiet_config_warnings():
            self.model = SiglipModel.from_pretrained(
                str(folder / "checkpoint"), attn_implementation="eager", dtype=torch.float32).eval()
        self.tokenizer = SiglipTokenizer(vocab_file=str(folder / "spiece.model"))
        self.processor = SiglipImageProcessorPil()  # its defaults are SigLIP base 224's
        self.context_length = int(self.model.config.text_config.max_position_embeddings)

    # --- text

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The tokenizer's whole output (input_ids and attention_mask), (n, 64) each."""
        return dict(self.tokenizer(list(texts), padding="max_length", max_length=self.context_length,
                                   truncation=True, return_tensors="np"))

    def input_ids(self, texts: list[str]) -> np.ndarray:
        return self.tokenize(texts)["input_ids"].astype(np.int64)  # (n, 64)

    def text_embeds_from_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.shape[1] != self.context_length or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"input_ids must be integer (n, {self.context_length}), got {ids.dtype} {ids.shape}")
        mask = None if attention_mask is None else self._torch.from_numpy(np.asarray(attention_mask, np.int64))
        with self._torch.no_grad():
            out = self.model.get_text_features(input_ids=self._torch.from_numpy(ids.astype(np.int64)),
                                               attention_mask=mask)
        return out.pooler_output.numpy().astype(np.float32)  # (n, 64)

    def text_embeds(self, texts: list[str]) -> np.ndarray:
        return self.text_embeds_from_ids(self.input_ids(texts))  # (n, 64)

    # --- images

    def pixel_values(self, images: list) -> np.ndarray:
        """PIL images or encoded files' bytes -> (n, 3, 224, 224) float32, as SiglipImageProcessorPil makes them."""
        out = self.processor(images=[_open(im) for im in images], return_tensors="np")
        return np.asarray(out["pixel_values"], dtype=np.float32)  # (n, 3, 224, 224)

    def image_embeds_from_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        x = np.asarray(pixel_values, dtype=np.float32)  # (n, 3, 224, 224)
        with self._torch.no_grad():
            out = self.model.get_image_features(pixel_values=self._torch.from_numpy(x))
        return out.pooler_output.numpy().astype(np.float32)  # (n, 64)

    def image_embeds(self, images: list) -> np.ndarray:
        return self.image_embeds_from_pixels(self.pixel_values(images))  # (n, 64)

    # --- scoring

    def logits_per_image(self, images: list, texts: list[str]) -> np.ndarray:
        """The model's own forward: exp(logit_scale) * cosine + logit_bias, (n_images, n_texts)."""
        pixels = self._torch.from_numpy(self.pixel_values(images))
        ids = self._torch.from_numpy(self.input_ids(texts))
        with self._torch.no_grad():
            out = self.model(input_ids=ids, pixel_values=pixels)
        return out.logits_per_image.numpy().astype(np.float32)  # (n_images, n_texts)

    def probs(self, images: list, texts: list[str]) -> np.ndarray:
        """Each label on its own: sigmoid of the logits, as transformers' docs do."""
        logits = self._torch.from_numpy(self.logits_per_image(images, texts))
        return self._torch.sigmoid(logits).numpy()  # (n_images, n_texts)
