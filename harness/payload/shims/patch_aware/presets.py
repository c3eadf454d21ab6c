"""The `presets` pipelines patch_aware_train.py builds for ImageFolder (torchvision references API).

Training: random resized crop, horizontal flip, tensor, normalise, optional random erasing.
Evaluation: resize, centre crop, tensor, normalise. Options the KPI command does not use
(auto-augment policies, the v2 transforms) fail loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import transforms as T
from torchvision.transforms.functional import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not supported by the ANT KPI harness stand-in for torchvision's presets.py")


def _to_tensor(backend: str) -> list[Any]:
    backend = backend.lower()
    if backend == "pil":
        return [T.PILToTensor(), T.ConvertImageDtype(torch.float)]
    if backend == "tensor":
        return [T.ConvertImageDtype(torch.float)]
    raise _unsupported(f"backend {backend!r}")


def _input_stage(backend: str) -> list[Any]:
    # With the tensor backend the PIL image becomes a uint8 tensor before any geometry.
    return [T.PILToTensor()] if backend.lower() == "tensor" else []


class ClassificationPresetTrain:
    def __init__(
        self,
        *,
        crop_size: int,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        hflip_prob: float = 0.5,
        auto_augment_policy: str | None = None,
        ra_magnitude: int = 9,
        augmix_severity: int = 3,
        random_erase_prob: float = 0.0,
        backend: str = "pil",
        use_v2: bool = False,
    ) -> None:
        if use_v2:
            raise _unsupported("--use-v2")
        if auto_augment_policy:
            raise _unsupported(f"--auto-augment {auto_augment_policy}")
        steps: list[Any] = _input_stage(backend)
        steps.append(T.RandomResizedCrop(crop_size, interpolation=interpolation, antialias=True))
        if hflip_prob > 0:
            steps.append(T.RandomHorizontalFlip(hflip_prob))
        steps += _to_tensor(backend)
        steps.append(T.Normalize(mean=mean, std=std))
        if random_erase_prob > 0:
            steps.append(T.RandomErasing(p=random_erase_prob))
        self.transforms = T.Compose(steps)

    def __call__(self, img: Any) -> Any:
        return self.transforms(img)


class ClassificationPresetEval:
    def __init__(
        self,
        *,
        crop_size: int,
        resize_size: int = 256,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        backend: str = "pil",
        use_v2: bool = False,
    ) -> None:
        if use_v2:
            raise _unsupported("--use-v2")
        steps: list[Any] = _input_stage(backend)
        steps += [T.Resize(resize_size, interpolation=interpolation, antialias=True), T.CenterCrop(crop_size)]
        steps += _to_tensor(backend)
        steps.append(T.Normalize(mean=mean, std=std))
        self.transforms = T.Compose(steps)

    def __call__(self, img: Any) -> Any:
        return self.transforms(img)
