"""A small glyph classifier whose penultimate layer is the feature space of the sample metrics.

Architecture (``GlyphClassifier``, 155 786 parameters, float32): three blocks of 3 x 3 conv
(padding 1) -> ReLU -> 2 x 2 max-pool taking 1 x 32 x 32 to 16 x 16 x 16, 32 x 8 x 8 and
64 x 4 x 4; flatten (1024) -> linear 128 -> ReLU, the FEATURES = 128 features; linear 10, the
logits of the digits 0..9. Inputs are images in [-1, 1] (the datasets' range), (N, 1, H, W):
any other square size H >= 16 is first resized to 32 x 32 bilinearly (antialiased when
shrinking, as ``data.load_dataset`` resizes). On the first 2000 glyphs test images the accuracy
is 100 % at 32 and 64 px, 97 % at 16 px and 47 % at 8 px, which is refused.

The shipped weights (assets/classifier/glyphs_cnn.pt, a state dict of plain tensors loaded with
``torch.load(weights_only=True)``; its sidecar glyphs_cnn.json holds the training command,
steps, time, seed and held-out accuracy) were trained on the glyphs training split at 32 px by
scripts/train_classifier.py. They are loaded once per device and cached.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CLASSIFIER_PATH",
    "FEATURES",
    "INPUT_SIZE",
    "GlyphClassifier",
    "classifier_features",
    "classifier_info",
    "classifier_outputs",
    "load_classifier",
]

CLASSIFIER_PATH = Path(__file__).resolve().parent.parent / "assets" / "classifier" / "glyphs_cnn.pt"
INPUT_SIZE = 32
MIN_SIZE = 16  # held-out accuracy 97 % at 16 px (upsampled), 47 % at 8 px
FEATURES = 128
CLASSES = 10
CHANNELS = (16, 32, 64)
BATCH = 500  # images per forward pass in classifier_outputs (bounded memory)


class GlyphClassifier(nn.Module):
    """Conv net for 1 x 32 x 32 glyphs; ``features`` is the penultimate layer (N, FEATURES)."""

    def __init__(self):
        super().__init__()
        c1, c2, c3 = CHANNELS
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.fc = nn.Linear(c3 * (INPUT_SIZE // 8) ** 2, FEATURES)
        self.head = nn.Linear(FEATURES, CLASSES)

    def features(self, x: Tensor) -> Tensor:
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _validate(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"{name} must be a batch of square grey images (N, 1, H, H), got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    if x.shape[0] == 0 or x.shape[-1] < MIN_SIZE:
        raise ValueError(
            f"{name} must hold at least one image of H >= {MIN_SIZE} (the classifier's features"
            f" are not meaningful below), got {tuple(x.shape)}"
        )
    if x.is_complex() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite real numbers")
    return x


def resize_for_classifier(x: Tensor) -> Tensor:
    """(N, 1, H, H) -> (N, 1, 32, 32) float32, bilinear (antialiased when shrinking)."""
    x = x.float()
    if x.shape[-1] == INPUT_SIZE:
        return x
    shrink = x.shape[-1] > INPUT_SIZE
    size = (INPUT_SIZE, INPUT_SIZE)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> GlyphClassifier:
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = GlyphClassifier()
    net.load_state_dict(state)  # strict: a file of another architecture is refused
    return net.to(device).eval().requires_grad_(False)


def load_classifier(device: str | torch.device = "cpu", path: Path | None = None):
    """The shipped classifier (eval mode, no gradients), loaded once per device and path."""
    path = CLASSIFIER_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights not found at {path}; rebuild them with "
            "`python scripts/train_classifier.py` (assets/README.md)"
        )
    return _load(str(path), str(torch.device(device)))


def classifier_info(path: Path | None = None) -> dict:
    """The JSON sidecar of the shipped weights (architecture, command, accuracy, seed, ...)."""
    path = (CLASSIFIER_PATH if path is None else Path(path)).with_suffix(".json")
    return json.loads(path.read_text(encoding="utf-8"))


def classifier_outputs(x: Tensor, name: str = "x") -> tuple[Tensor, Tensor]:
    """Penultimate features (N, 128) and logits (N, 10), float32 on x's device, for images
    x (N, 1, H, H) in [-1, 1]; resized to 32 x 32 first. ``name`` is used in error messages."""
    _validate(x, name)
    net = load_classifier(x.device)
    feats, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(x), BATCH):
            h = net.features(resize_for_classifier(x[start : start + BATCH]))
            feats.append(h)
            logits.append(net.head(h))
    return torch.cat(feats), torch.cat(logits)


def classifier_features(x: Tensor, name: str = "x") -> Tensor:
    """The classifier's penultimate features (N, 128) float32 of images x (N, 1, H, H)."""
    return classifier_outputs(x, name)[0]
