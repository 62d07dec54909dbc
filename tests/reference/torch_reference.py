"""The torch oracle: transformers' own CLIP on a reference checkpoint.

    from torch_reference import TorchClip, ensure_reference_models
    folder = ensure_reference_models("tiny")          # builds once, then cached
    clip = TorchClip(folder / "checkpoint")
    clip.image_embeds(pixels)   # (n, 3, 224, 224) float32 -> (n, 512) float32
    clip.text_embeds(ids)       # (n, 77) int -> (n, 512) float32

Embeddings are the raw projections (not L2-normalised), like the ONNX models' outputs.
This deliberately goes through `get_image_features`/`get_text_features`, not our ONNX wrappers,
so it checks them rather than repeating them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import build_models  # noqa: E402
from build_models import C  # noqa: E402  (pyapp.constants)


def ensure_reference_models(kind: str = "tiny", out: Path | None = None, force: bool = False) -> Path:
    """Folder of a reference model (checkpoint/, image.onnx, text.onnx, manifest.json), built if needed."""
    return build_models.build(kind, out, force=force)


def _pooled(out):
    # transformers 5.x returns BaseModelOutputWithPooling from get_*_features; 4.x a tensor.
    return out.pooler_output if hasattr(out, "pooler_output") else out


class TorchClip:
    def __init__(self, checkpoint: Path | str):
        import torch
        from transformers import CLIPModel

        self._torch = torch
        self.model = CLIPModel.from_pretrained(
            str(checkpoint), attn_implementation="eager", dtype=torch.float32).eval()
        # transformers pools at the first eos_token_id (argmax(ids) only for the legacy eos == 2).
        # OpenAI pools at argmax(ids), i.e. the EOT; the two agree only if eos is EOT.
        eos = self.model.config.text_config.eos_token_id
        if eos != C.EOT_ID:
            raise ValueError(f"checkpoint eos_token_id is {eos}, expected EOT {C.EOT_ID}")

    def image_embeds(self, pixel_values: np.ndarray) -> np.ndarray:
        x = np.asarray(pixel_values, dtype=np.float32)  # (n, 3, 224, 224)
        if x.ndim != 4 or x.shape[1:] != (3, C.IMAGE_SIZE, C.IMAGE_SIZE):
            raise ValueError(f"pixel_values must be (n, 3, {C.IMAGE_SIZE}, {C.IMAGE_SIZE}), got {x.shape}")
        with self._torch.no_grad():
            out = self.model.get_image_features(pixel_values=self._torch.from_numpy(x))
        return _pooled(out).numpy().astype(np.float32)  # (n, 512)

    def text_embeds(self, input_ids: np.ndarray) -> np.ndarray:
        ids = self._check_ids(input_ids)  # (n, 77) int64
        with self._torch.no_grad():
            out = self.model.get_text_features(input_ids=self._torch.from_numpy(ids))
        return _pooled(out).numpy().astype(np.float32)  # (n, 512)

    def text_embeds_at(self, input_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Projection of the final hidden state at given positions: pooling done by hand,
        to show that transformers pools at the EOT and what pooling elsewhere would give."""
        ids = self._check_ids(input_ids)  # (n, 77)
        pos = self._torch.as_tensor(np.asarray(positions, dtype=np.int64))  # (n,)
        with self._torch.no_grad():
            hidden = self.model.text_model(input_ids=self._torch.from_numpy(ids)).last_hidden_state  # (n, 77, w)
            pooled = hidden[self._torch.arange(hidden.shape[0]), pos]  # (n, w)
            return self.model.text_projection(pooled).numpy().astype(np.float32)  # (n, 512)

    @staticmethod
    def _check_ids(input_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.shape[1] != C.CONTEXT_LENGTH or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"input_ids must be integer (n, {C.CONTEXT_LENGTH}), got {ids.dtype} {ids.shape}")
        # Without an EOT, transformers would pool at position 0 and OpenAI at the largest id:
        # the oracle would silently disagree with the ONNX model, so refuse instead.
        if not (ids == C.EOT_ID).any(axis=1).all():
            raise ValueError("every row of input_ids needs an EOT token")
        return ids.astype(np.int64)
