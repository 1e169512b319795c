"""``{kind: digits}``: scikit-learn's bundled handwritten digits (1797 images, 8×8, 10 classes), offline."""

from __future__ import annotations

from typing import Literal

import numpy as np
from edgecraft.datasets import Dataset, DatasetContext, DatasetKind, SampleShape, make_dataset
from edgecraft.plan import DatasetParams
from pydantic import Field


class DigitsParams(DatasetParams):
    """scikit-learn's bundled handwritten digits (1797 images, 8×8, 10 classes), offline."""

    kind: Literal["digits"] = "digits"
    split: Literal["train", "test", "all"] = "test"
    image_size: int = Field(32, ge=8, le=64, description="Images are resized (bilinear) to this side length.")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    layout: Literal["image", "flat"] = Field("image", description="'image': (n, 1, size, size); "
                                             "'flat': (n, size*size) for MLPs.")
    seed: int = 0
    input: str = Field("x", description="Name of the images array (name it like the model input to feed it "
                       "explicitly; a single-input model takes the only array anyway).")

    def declared_sample_shape(self) -> SampleShape:
        """One sample's shape, known without loading (a step checks it against the model's input at compile
        time: see :class:`edgecraft.datasets.DeclaresSampleShape`)."""
        shape = [1, self.image_size, self.image_size] if self.layout == "image" else [self.image_size ** 2]
        return SampleShape(shape, "image_size / layout")


class DigitsKind(DatasetKind[DigitsParams]):
    kind = "digits"
    params_model = DigitsParams
    summary = "scikit-learn's bundled 8x8 handwritten digits, resized; labeled, offline."

    def load(self, name: str, params: DigitsParams, ctx: DatasetContext) -> Dataset:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = bunch.images.astype(np.float32) / 16.0  # (n, 8, 8), values in [0, 1]
        labels = bunch.target.astype(np.int64)
        if params.split != "all":
            idx = np.arange(len(labels))
            train_idx, test_idx = train_test_split(idx, test_size=params.test_fraction, random_state=params.seed,
                                                   stratify=labels)
            chosen = np.sort(train_idx if params.split == "train" else test_idx)
            images, labels = images[chosen], labels[chosen]
        if params.image_size != 8:
            import torch

            tensor = torch.from_numpy(images).unsqueeze(1)
            tensor = torch.nn.functional.interpolate(tensor, size=(params.image_size, params.image_size),
                                                     mode="bilinear", align_corners=False)
            images = tensor.squeeze(1).numpy()
        x = images[:, None, :, :] if params.layout == "image" else images.reshape(len(images), -1)
        return make_dataset(name, {params.input: x}, labels, max_samples=params.max_samples)
