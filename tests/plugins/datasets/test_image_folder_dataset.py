"""The image-folder dataset kind: classes from sorted subfolders, resize, normalize, layout, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgecraft.datasets import DatasetContext
from edgecraft.errors import InputError
from edgecraft.plugins.datasets.image_folder import ImageFolderKind, ImageFolderParams
from PIL import Image

pytestmark = pytest.mark.huggingface


def write_image(path: Path, value: int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color: Any = (value, value // 2, 255 - value) if mode == "RGB" else value
    Image.new(mode, size, color).save(path)


def load(root: Path, **params: Any):
    return ImageFolderKind().load("images", ImageFolderParams(**{"path": "imgs", "size": [8, 6], **params}),
                                  DatasetContext(root))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in range(3):
        write_image(tmp_path / "imgs" / "dog" / f"{i}.png", 200)
    write_image(tmp_path / "imgs" / "cat" / "a.jpg", 100)
    write_image(tmp_path / "imgs" / "cat" / "b.png", 100)
    write_image(tmp_path / "imgs" / "cat" / "nested" / "c.png", 100, mode="L")  # grayscale converted to RGB
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image, ignored")
    return tmp_path


def test_classes_sorted_images_resized_normalized_nchw(folder: Path) -> None:
    data = load(folder, mean=[0.5], std=[0.5])
    x = data.x
    assert x.dtype == np.float32 and x.shape == (6, 3, 8, 6)
    assert data.y is not None and list(data.y) == [0, 1, 0, 1, 0, 1]  # cat=0, dog=1, round-robin across classes
    assert np.allclose(x[1, 0], (200 / 255 - 0.5) / 0.5, atol=1e-5)  # red channel of a dog image
    assert np.allclose(x[1, 2], (55 / 255 - 0.5) / 0.5, atol=1e-5)


def test_grayscale_nhwc_and_max_samples_are_class_balanced(folder: Path) -> None:
    data = load(folder, channels=1, layout="nhwc", max_samples=4)
    assert data.x.shape == (4, 8, 6, 1)
    assert data.y is not None and sorted(data.y.tolist()) == [0, 0, 1, 1]


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", r"data.images.path: folder .*imgs does not exist"),
    ("empty", r"data.images.path: .*imgs has no subfolders \(it is empty\)"),
    ("loose", r"has no subfolders \(images directly inside"),
    ("empty-class", r"class folder .*bird holds no images"),
    ("broken", r"cannot read image .*broken.png"),
])
def test_errors_name_the_folder_or_file(tmp_path: Path, setup: str, message: str) -> None:
    root = tmp_path / "imgs"
    if setup != "missing":
        root.mkdir()
    if setup == "loose":
        write_image(root / "1.png", 10)
    if setup in ("empty-class", "broken"):
        write_image(root / "cat" / "1.png", 10)
        (root / "bird").mkdir()
    if setup == "broken":
        (root / "bird" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=message):
        load(tmp_path)


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="mean: give 1 or 3 values"):
        ImageFolderParams(path="x", size=[4, 4], mean=[0.1, 0.2])
    with pytest.raises(ValueError, match="std: every value must be positive"):
        ImageFolderParams(path="x", size=[4, 4], std=[0.0])
