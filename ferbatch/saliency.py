"""Saliency maps of emotion predictions: Grad-CAM on the classifier's last convolution.

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization") weighs the last convolutional layer's feature maps by the mean
gradient of the class score and keeps the positive part; computed here with Captum's
:class:`captum.attr.LayerGradCam` and upsampled with :meth:`captum.attr.LayerAttribution.interpolate`.

:func:`explain` takes a face crop (the whole array is the face) or a frame plus the face's box
and landmarks (the face is cropped as the pipeline crops it, :mod:`ferbatch.crop`, and the map
is warped back into the frame), and returns the map with the input's height and width.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .classify import EmotionClassifier
from .crop import crop_faces, face_transform, to_grey
from .errors import FerbatchError

log = logging.getLogger(__name__)

__all__ = ["Explanation", "explain", "explain_face", "overlay", "last_conv_layer", "gradcam_layers",
           "load_explainer"]

ModelLike = EmotionClassifier | str | os.PathLike[str] | None


@dataclass
class Explanation:
    """A Grad-CAM map and the prediction it explains.

    ``map``: float32 H×W in [0, 1] (the input's height and width; 1 = the most salient pixel,
    all zeros when no region raises the class score); ``label`` / ``probability``: the explained
    class and its calibrated probability; ``probs``: float32 C, every class's probability.
    """

    map: np.ndarray
    label: str
    probability: float
    probs: np.ndarray


def load_explainer(model: ModelLike = None) -> EmotionClassifier:
    """An :class:`EmotionClassifier` on the CPU (``model``: one, a checkpoint path, a bundled
    name, or ``None`` for the bundled default)."""
    if isinstance(model, EmotionClassifier):
        return model
    return EmotionClassifier(model, device="cpu", batch_size=1)


_BLOCK_TAIL = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The output layer of the model's last conv block: the last :class:`torch.nn.Conv2d` in
    module order, or the normalisation / activation right after it (Grad-CAM's feature maps
    are the block's rectified output). Raises :class:`FerbatchError` for a model without a
    convolution."""
    modules = list(model.modules())
    convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FerbatchError(f"{type(model).__name__} has no convolution layer: Grad-CAM needs one")
    layer = convs[-1]
    while layer + 1 < len(modules) and isinstance(modules[layer + 1], _BLOCK_TAIL):
        layer += 1
    return modules[layer]


def gradcam_layers(model: nn.Module) -> list[nn.Module]:
    """The layers Grad-CAM weighs: :func:`last_conv_layer` of the model, or of each member of a
    logit-averaging ensemble (:class:`~ferbatch.models.archs.LogitMean`, whose members' last
    feature maps have the same size, so their maps add up)."""
    from .models.archs import LogitMean

    if isinstance(model, LogitMean):
        return [last_conv_layer(member) for member in model.members]
    return [last_conv_layer(model)]


def _to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return to_grey(np.ascontiguousarray(image[..., :3]))  # the pipeline's luma
    if image.ndim == 2:
        return image
    raise ValueError(f"expected a grey H×W or RGB H×W×3 uint8 image, got shape {image.shape}")


def _gradcam(clf: EmotionClassifier, crop: np.ndarray, target: int | str | None,
             ) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM of a uint8 S×S grey crop (S = ``image_size``): map S×S in [0, 1], target index,
    probabilities."""
    from captum.attr import LayerAttribution, LayerGradCam

    pre = clf.preprocess
    x = pre.to_input(torch.from_numpy(np.ascontiguousarray(crop))[None]).to(clf.device)
    model = clf.model.eval()
    with torch.no_grad():
        probs = F.softmax(model(x).float() / clf.temperature, dim=1)[0].cpu().numpy()
    if target is None:
        k = int(probs.argmax())
    elif isinstance(target, str):
        if target not in clf.labels:
            raise FerbatchError(f"label {target!r} is not one of the model's {clf.labels}")
        k = clf.labels.index(target)
    else:
        k = int(target)
    x.requires_grad_(True)
    # one Grad-CAM over the layers of all members (an ensemble) is Grad-CAM of their channels
    # concatenated: sum the weighted maps first, keep the positive part after
    attr = sum(LayerGradCam(model, layer).attribute(x, target=k, relu_attributions=False)
               for layer in gradcam_layers(model)).clamp(min=0)
    up = LayerAttribution.interpolate(attr.detach(), (pre.input_size, pre.input_size),
                                      interpolate_mode="bilinear")[0, 0].cpu().numpy()
    full = np.zeros((pre.image_size, pre.image_size), np.float32)
    off = (pre.image_size - pre.input_size) // 2  # the centre crop the classifier saw
    full[off:off + pre.input_size, off:off + pre.input_size] = np.clip(up, 0, None)
    peak = float(full.max())
    return (full / peak if peak > 0 and np.isfinite(peak) else np.zeros_like(full)), k, probs


def explain_face(image: np.ndarray, model: ModelLike = None, *, box: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None, target: int | str | None = None,
                 ) -> Explanation:
    """Grad-CAM of the emotion prediction for one face (see :func:`explain`), with the label
    and probabilities it explains."""
    clf = load_explainer(model)
    grey = _to_grey(np.asarray(image))
    h, w = grey.shape
    size = clf.preprocess.image_size
    if box is None:  # the whole image is the face crop
        crop = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
        cam, k, probs = _gradcam(clf, crop, target)
        heat = cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        box = np.asarray(box, float)
        marks = None if landmarks is None else np.asarray(landmarks, float).reshape(5, 2)
        # the pipeline's own crop (supersampled warp, then area resize): the same pixels, so the
        # same probabilities as the run's rows
        crop = crop_faces(grey, box[None], None if marks is None else marks[None],
                          clf.preprocess)[0]
        m = face_transform(box, marks, clf.preprocess, size)  # crop pixels ↔ image pixels
        cam, k, probs = _gradcam(clf, crop, target)
        heat = cv2.warpAffine(cam, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    heat = np.nan_to_num(heat.astype(np.float32), nan=0.0).clip(0, 1)
    return Explanation(heat, clf.labels[k], float(probs[k]), probs.astype(np.float32))


def explain(image: np.ndarray, model: ModelLike = None, *, box: np.ndarray | None = None,
            landmarks: np.ndarray | None = None, target: int | str | None = None) -> np.ndarray:
    """Grad-CAM saliency map of the emotion model's prediction for a face.

    ``image``: uint8 grey H×W or RGB H×W×3. Without ``box`` the whole image is the face crop
    (resized to the model's ``image_size``); with ``box`` (x1, y1, x2, y2 in the image's pixels)
    and optionally the five ``landmarks`` (5×2), the face is cropped as the pipeline crops it
    and the map is warped back into the image. ``model``: an :class:`EmotionClassifier`, a
    checkpoint path or bundled name (``None``: the bundled default; passing a loaded one avoids
    reloading it). ``target``: the class explained (index or label; default the top one).

    Returns float32 H×W in [0, 1], finite (zeros outside the face's crop). Raises
    :class:`FerbatchError` for a model without a convolution or an unknown label, ``ValueError``
    for an image of another shape.
    """
    return explain_face(image, model, box=box, landmarks=landmarks, target=target).map


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 H×W×3: ``image`` (grey or RGB) with ``heat`` (H×W in [0, 1]) blended over it
    in OpenCV's JET colour map."""
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    rgb = np.ascontiguousarray(rgb[..., :3]).astype(np.uint8)
    colour = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    weight = (alpha * np.clip(heat, 0, 1))[..., None]
    return (rgb * (1 - weight) + colour * weight).round().astype(np.uint8)


def face_panel(frame: np.ndarray, box: np.ndarray, heat: np.ndarray, *, margin: float = 0.25,
               height: int = 224) -> np.ndarray:
    """RGB uint8 image: the face region of ``frame`` (``box`` plus ``margin`` of its size on
    each side, clipped to the frame) and the same region with the frame-sized ``heat``
    overlaid (:func:`overlay`), side by side, ``height`` pixels tall."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box)} lies outside the {w}×{h} frame")
    rgb = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    region = np.ascontiguousarray(rgb[top:bottom, left:right, :3])
    hot = overlay(region, heat[top:bottom, left:right])
    scale = height / region.shape[0]
    size = (max(1, round(region.shape[1] * scale)), height)
    pair = [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in (region, hot)]
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([pair[0], gap, pair[1]], axis=1)


def encode_image(rgb: np.ndarray, ext: str = ".png") -> bytes:
    """``rgb`` (H×W×3 uint8) encoded by OpenCV as ``ext`` (``.png`` or ``.jpg``)."""
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise FerbatchError(f"could not encode a {rgb.shape} image as {ext}")
    return buf.tobytes()
