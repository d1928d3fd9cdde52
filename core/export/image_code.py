"""Show me the code for an image run: the CNN's data loading and training written out in plain
torch and Pillow (``core.export.code`` for tables and the shared pieces).

The images are read as ``core.images`` reads them (class folders in a folder or a zip, sorted by
name, each centre-cropped and resized by its own ``_pixels``, copied in), split as the run split
them, and the network (``ConvNet``, copied from ``core.models.cnn``) is trained with the run's
settings: AdamW, a one-cycle schedule stepped every batch, label smoothing, the same augmentation
drawn from the same seeded generator. As for the MLP, the script trains the epochs the run
trained and keeps the weights of the run's best epoch instead of re-deciding when to stop.
"""

from __future__ import annotations

from typing import Any

from core.export.source import FlatSource
from core.export.walker import Writer

_LOAD = '''
def image_files(path):
    """(name, bytes) of every file in a folder or a zip, names relative with "/" between parts."""
    path = Path(path)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            yield file.relative_to(path).as_posix(), file.read_bytes
    else:
        archive = zipfile.ZipFile(path)
        for info in archive.infolist():
            if not info.is_dir():
                yield info.filename, lambda info=info: archive.read(info)


def load(path):
    """The images (uint8 N×C×S×S) and their class indexes, as the run read them: one folder per
    class (under a chain of single top folders), images in name order, each cropped to a square."""
    found = []
    for name, read in image_files(path):
        parts = _parts(name)
        if parts and not _is_ignored(parts) and PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES:
            found.append((name, parts, read))
    depth = 0
    while (len({p[depth] for _, p, _ in found if len(p) > depth + 1}) == 1
           and any(len(p) > depth + 2 for _, p, _ in found)):
        depth += 1
    images, labels = [], []
    for name, parts, read in sorted(found, key=lambda item: item[0]):
        if len(parts) - depth < 2 or parts[depth] not in CLASSES:
            continue  # not in a class folder, or a class the run did not learn
        try:
            with Image.open(io.BytesIO(read()), formats=IMAGE_FORMATS) as image:
                images.append(_pixels(image, IMAGE_SIZE, CHANNELS))
        except Exception:  # an unreadable file: the run skipped it too
            continue
        labels.append(CLASSES.index(parts[depth]))
    return np.stack(images), np.asarray(labels, dtype=np.int64)
'''

_TRAIN = '''
def train(X_train, y_train):
    """The network trained as the run did; returns it in eval mode."""
    torch.manual_seed(SEED)  # the weights' start and dropout
    generator = torch.Generator().manual_seed(SEED)  # the batches' order and the augmentation
    mean, std = _channel_stats(X_train, SEED)  # the network normalises its inputs with these
    net = ConvNet(CHANNELS, len(CLASSES), SETTINGS["widths"], mean, std, DROPOUT, stem_stride_for(IMAGE_SIZE),
                  SETTINGS["convs_per_block"]).place("cpu")
    X = torch.from_numpy(np.ascontiguousarray(X_train, dtype=np.uint8))
    y = torch.as_tensor(y_train, dtype=torch.int64)
    n_batches = max(1, len(X) // SETTINGS["batch_size"])  # near-equal batches, none of one image
    weight = None
    if SETTINGS["class_weights"]:  # rare classes weigh more, as in the run
        counts = np.bincount(y_train, minlength=len(CLASSES))
        weight = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=SETTINGS["label_smoothing"])
    optimizer = torch.optim.AdamW(net.parameters(), lr=SETTINGS["lr"], weight_decay=SETTINGS["weight_decay"])
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=SETTINGS["lr"], pct_start=WARMUP_SHARE,
                                                    total_steps=SETTINGS["epochs"] * n_batches)
    augment = SETTINGS["augment"] != "none"
    best = None
    for epoch in range(1, SETTINGS["epochs_run"] + 1):
        net.train()
        for index in torch.tensor_split(torch.randperm(len(X), generator=generator), n_batches):
            images = _augment(X[index].float(), generator, SETTINGS["flip"]) if augment else X[index]
            loss = criterion(net(images), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            one_cycle.step()
        if epoch == SETTINGS["best_epoch"]:  # the run's early stopping kept this epoch's weights
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if best is not None:
        net.load_state_dict(best)
    return net.eval()


def predict_proba(net, X):
    """Class probabilities, columns in CLASSES order, 256 images at a time."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(X), 256):
            logits = net(torch.tensor(X[start:start + 256]))
            out.append(torch.softmax(logits.double(), dim=1).numpy())
    return np.concatenate(out)
'''


def image_script(script: Any) -> str:
    """The body sections of an image run's script; ``script`` is the ``core.export.code`` builder
    (its copied pieces, manifest and section helpers)."""
    from core.export.code import _section

    pieces: FlatSource = script.pieces
    m = script.m
    params = m["model"]["params"]
    for name in ("_pixels", "_parts", "_is_ignored", "IMAGE_SUFFIXES", "IMAGE_FORMATS"):
        pieces.add(("core.images", name))
    for name in ("ConvNet", "stem_stride_for", "_channel_stats", "_augment", "DROPOUT", "WARMUP_SHARE"):
        pieces.add(("core.models.cnn", name))
    for line in ("import io", "import zipfile", "from pathlib import Path, PurePosixPath", "from PIL import Image",
                 "import numpy as np", "import torch", "from torch import nn"):
        pieces.import_line(line)
    keys = ("epochs", "batch_size", "lr", "widths", "convs_per_block", "augment", "flip", "label_smoothing",
            "weight_decay", "class_weights", "epochs_run", "best_epoch")
    settings = {k: params[k] for k in keys}
    writer = Writer(pieces)
    facts = "\n".join([
        _section("facts", "What the run recorded."),
        f"DATA = {script.data_path()!r}  # the images the run was trained from",
        f"TASK = {m['task']!r}",
        f"CLASSES = {list(m['data']['classes'])!r}  # class folders, in the order of the probability columns",
        f"IMAGE_SIZE = {int(m['data']['image_size'])}  # pixels on each side",
        f"CHANNELS = {int(m['data']['channels'])}  # 1: grey, 3: colour",
        f"VALID_FRACTION = {m['split']['valid_fraction']!r}",
        f"SEED = {m['split']['seed']!r}",
        "SETTINGS = " + writer.expr(settings) + "  # the network's settings as the run used them",
        f"METRICS = {list(m['metrics'])!r}  # the run's metric keys",
    ])
    split_rows = pieces.add(("core.splits", "split_rows"))
    split = (_section("split", "The validation images: the same share, seed and stratification as the run.") +
             'def split(labels):\n    """Training and validation positions."""\n'
             f"    train, valid = {split_rows}(labels, TASK, VALID_FRACTION, SEED)\n")
    if script.dropped_duplicates():
        repeats = pieces.add(("core.checks", "validation_duplicates"))
        split += ("    # As the run did: validation images identical to a training image (same pixels and class)\n"
                  "    # are dropped.\n"
                  f"    repeat = {repeats}(X[train], labels[train], X[valid], labels[valid])\n"
                  "    valid = valid[~repeat]\n")
        split = split.replace("def split(labels):", "def split(X, labels):")
    split += "    return train, valid"
    probabilities = "predict_proba(net, X[valid_rows])"
    metrics = pieces.add(("core.evaluation", "classification_metrics"))
    threshold = script.threshold()
    evaluate = (_section("evaluate", "The validation metrics, computed as Trainboard computes them.") +
                'def evaluate(proba, labels):\n    """The metrics of the validation images, with the run\'s keys."""\n'
                "    names = np.asarray(CLASSES, dtype=object)[labels]\n"
                f"    metrics = {metrics}(names, proba, tuple(CLASSES), {threshold!r})\n"
                "    return {key: metrics.get(key) for key in METRICS}")
    call_split = "split(X, labels)" if script.dropped_duplicates() else "split(labels)"
    main = "\n".join([
        _section("run", "Load, split, train, evaluate; the metrics are the last line printed."),
        "def main():",
        "    path = sys.argv[1] if len(sys.argv) > 1 else DATA",
        "    X, labels = load(path)",
        f"    train_rows, valid_rows = {call_split}",
        '    print(f"{len(train_rows):,} training images, {len(valid_rows):,} validation images", file=sys.stderr)',
        "    net = train(X[train_rows], labels[train_rows])",
        f"    print(json.dumps(evaluate({probabilities}, labels[valid_rows])))",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ])
    return "\n\n\n".join([
        facts,
        _section("load", "Read the images as the run did.") + _LOAD.strip("\n"),
        split,
        _section("model and train", "The network (ConvNet, above) trained with the run's settings, in plain torch.")
        + _TRAIN.strip("\n"),
        evaluate,
        main,
    ])
