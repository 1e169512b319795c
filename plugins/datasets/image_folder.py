"""``{kind: image-folder, path: DIR, size: [224, 224]}``: one subfolder per class, images inside.

The torchvision ``ImageFolder`` layout users already have: ``DIR/cat/*.jpg``, ``DIR/dog/*.png``;
classes are the subfolders in sorted name order (label ids 0, 1, ...), so the same folder always
gives the same ids. Images are read with Pillow (imported only here), converted to RGB or
grayscale, resized (bilinear) to ``size``, scaled to [0, 1], normalized with ``mean``/``std`` and
stored as float32 ``(n, C, H, W)`` (or ``(n, H, W, C)``).

Samples are ordered round-robin across classes (the first image of every class, then the second,
...), so ``max_samples`` and a step's ``calibration_samples`` take a class-balanced subset rather
than only the first class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from edgecraft.datasets import Dataset, DatasetContext, DatasetKind, make_dataset
from edgecraft.errors import InputError, resolve_input_path
from edgecraft.plan import DatasetParams
from pydantic import Field, model_validator

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class ImageFolderParams(DatasetParams):
    """A folder with one subfolder of images per class (sorted names are label ids 0, 1, ...)."""

    kind: Literal["image-folder"] = "image-folder"
    path: str = Field(description="The folder holding one subfolder per class, relative to the plan file.")
    size: list[int] = Field(min_length=2, max_length=2, description="[height, width] images are resized to.")
    channels: Literal[1, 3] = Field(3, description="3: RGB; 1: grayscale.")
    mean: list[float] | None = Field(None, description="Per-channel mean subtracted after scaling to [0, 1] (one "
                                     "value or one per channel), e.g. ImageNet's [0.485, 0.456, 0.406]; default 0.")
    std: list[float] | None = Field(None, description="Per-channel std divided by (one value or one per channel); "
                                    "default 1.")
    layout: Literal["nchw", "nhwc"] = Field("nchw", description="'nchw': (n, C, H, W) as torch models take; "
                                            "'nhwc': (n, H, W, C).")
    input: str = Field("x", description="Name of the images array (name it like the model input to feed it "
                       "explicitly; a single-input model takes the only array anyway).")

    @model_validator(mode="after")
    def _check(self) -> ImageFolderParams:
        if any(d <= 0 for d in self.size):
            raise ValueError("size: both dimensions must be positive")
        for field in ("mean", "std"):
            values = getattr(self, field)
            if values is not None and len(values) not in (1, self.channels):
                raise ValueError(f"{field}: give 1 or {self.channels} values (channels = {self.channels}), "
                                 f"got {len(values)}")
        if self.std is not None and any(v <= 0 for v in self.std):
            raise ValueError("std: every value must be positive")
        return self


def list_classes(root: Path, *, where: str) -> list[tuple[str, list[Path]]]:
    """(class name, sorted image files) per subfolder, sorted by name; errors name the folder."""
    if not root.exists():
        raise InputError(f"{where}: folder {root} does not exist", hint="paths are relative to the plan file")
    if not root.is_dir():
        raise InputError(f"{where}: {root} is a file; image-folder needs a folder with one subfolder per class")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:3]
        raise InputError(f"{where}: {root} has no subfolders" + (f" (images directly inside: {loose}...)" if loose
                                                                  else " (it is empty)"),
                         hint="put each class's images in its own subfolder: DIR/cat/1.jpg, DIR/dog/2.jpg")
    classes = []
    for folder in subfolders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise InputError(f"{where}: class folder {folder} holds no images "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})",
                             hint="remove the empty class folder, or add its images (label ids follow the "
                                  "sorted folder names)")
        classes.append((folder.name, files))
    return classes


class ImageFolderKind(DatasetKind[ImageFolderParams]):
    kind = "image-folder"
    params_model = ImageFolderParams
    summary = "A folder with one subfolder of images per class (Pillow), resized and normalized; labeled."

    def load(self, name: str, params: ImageFolderParams, ctx: DatasetContext) -> Dataset:
        where = f"data.{name}.path"
        try:
            from PIL import Image
        except ImportError as exc:
            raise InputError(f"data.{name}: the image-folder kind needs Pillow, which is not installed",
                             hint="pip install 'edgecraft[huggingface]'  (or pip install pillow)") from exc
        root = resolve_input_path(ctx.base_dir / params.path, field=f"data.{name}.path")
        classes = list_classes(root, where=where)
        # Round-robin across classes so a prefix of the samples is class-balanced.
        order: list[tuple[Path, int]] = []
        depth = max(len(files) for _, files in classes)
        for i in range(depth):
            order += [(files[i], label) for label, (_, files) in enumerate(classes) if i < len(files)]
        if params.max_samples is not None:
            order = order[:params.max_samples]  # decode only what is kept
        height, width = params.size
        mode = "RGB" if params.channels == 3 else "L"
        images = np.empty((len(order), height, width, params.channels), dtype=np.float32)
        for i, (file, _) in enumerate(order):
            try:
                with Image.open(file) as image:
                    resized = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                    pixels = np.asarray(resized, dtype=np.float32)
            except Exception as exc:
                raise InputError(f"{where}: cannot read image {file}: {type(exc).__name__}: {str(exc)[:200]}",
                                 hint="remove or replace the file (only image files belong in class folders)"
                                 ) from exc
            images[i] = pixels.reshape(height, width, params.channels) / 255.0
        mean = np.asarray(params.mean if params.mean is not None else [0.0], dtype=np.float32)
        std = np.asarray(params.std if params.std is not None else [1.0], dtype=np.float32)
        images = (images - mean) / std
        if params.layout == "nchw":
            images = images.transpose(0, 3, 1, 2)
        labels = np.asarray([label for _, label in order], dtype=np.int64)
        return make_dataset(name, {params.input: np.ascontiguousarray(images)}, labels)
