"""Face detection: the MTCNN cascade (P-Net → R-Net → O-Net) batched over frames.

The three networks' weights come from facenet-pytorch (shipped inside its wheel; see
:mod:`ferbatch.mtcnn_nets` for why its package is not imported).
The cascade itself is run here rather than through ``facenet_pytorch.MTCNN.detect`` because
that wrapper (a) fails on batches where some frames have no face ("inhomogeneous shape",
facenet-pytorch#224) or where no candidate survives a stage (empty ``torch.cat``, #176), and
(b) crops every candidate box in a Python loop. Here all candidates of a stage are cropped and
resized in one ``roi_align`` call, frames are downscaled to ``max_side`` first, and every
frame gets a (possibly empty) result.

R-Net / O-Net see a different number of candidates on every call: their batches are padded to
a few bucketed sizes (:mod:`ferbatch.batching`) so oneDNN's per-shape kernel cache stays small.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .batching import pad_rows
from .config import DetectConfig
from .decode import Frame
from .devices import upload
from .errors import ModelError
from .prepare import AnalysisFrame, detection_size, downscale

_BUCKET = 64  # R-Net / O-Net batch-size bucket step (see ferbatch.batching)


def _load_vision_ops() -> None:
    """Register torchvision's compiled ``nms`` / ``roi_align`` kernels with torch.

    Loading the extension library directly avoids importing torchvision's Python package (it
    imports ``torch._dynamo``: ~170 MB resident, ~1 s). Falls back to the package import."""
    try:
        torch.ops.torchvision.roi_align  # noqa: B018 - raises when not registered yet
        return
    except (AttributeError, RuntimeError):
        pass
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("torchvision is not installed (run `make setup`)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    libs = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    try:
        torch.ops.load_library(str(libs[0]))
    except (IndexError, OSError, RuntimeError):
        import torchvision.ops  # noqa: F401 - registers the same kernels


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                 iou: float) -> torch.Tensor:
    """NMS within each group: boxes of different groups are shifted apart so they never overlap."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    shift = groups.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    return torch.ops.torchvision.nms(boxes + shift[:, None], scores, iou)


def _padded(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run ``net`` on ``x`` padded to a bucketed batch size; outputs without the padding."""
    n = x.shape[0]
    x = pad_rows(x, _BUCKET).contiguous(memory_format=torch.channels_last)
    return tuple(t[:n] for t in net(x))


@dataclass
class Detections:
    """Faces found in one frame, in displayed-frame pixels.

    ``boxes`` K×4 (x1, y1, x2, y2), ``scores`` K, ``landmarks`` K×5×2 (left eye, right eye,
    nose, mouth left, mouth right; x, y), sorted by descending score.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32))


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow boxes (N×4) into squares around their centres."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx = boxes[:, 0] + w * 0.5
    cy = boxes[:, 1] + h * 0.5
    return torch.stack([cx - side * 0.5, cy - side * 0.5, cx + side * 0.5, cy + side * 0.5], 1)


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Apply the networks' box corrections (offsets in units of box width / height)."""
    w = (boxes[:, 2] - boxes[:, 0]).unsqueeze(1)
    h = (boxes[:, 3] - boxes[:, 1]).unsqueeze(1)
    return boxes + reg * torch.cat([w, h, w, h], 1)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, image_idx: torch.Tensor,
             threshold: float) -> torch.Tensor:
    """NMS with the intersection over the *smaller* box (MTCNN's last stage): drops boxes
    nested inside a better one. Few boxes reach this stage, so O(N²) is fine: the overlap
    matrix is computed where the boxes are, and the greedy pass runs on one host copy of it
    (a single device-to-host transfer, not one per box). Returns indices on ``boxes``' device."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(2)
    overlap = inter / torch.minimum(area[:, None], area[None, :]).clamp_min(1e-6)
    same = image_idx[order][:, None] == image_idx[order][None, :]
    suppress = ((overlap > threshold) & same).cpu()
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            later = suppress[i].clone()
            later[: i + 1] = False
            keep &= ~later
    return order[keep.to(order.device)]


class FaceDetector:
    """Callable stage: a batch of same-sized RGB frames → one :class:`Detections` per frame.

    Loads the three MTCNN networks once; call it with lists of ``H×W×3`` uint8 arrays.
    """

    name = "mtcnn (facenet-pytorch 2.6.0 weights)"

    def __init__(self, config: DetectConfig | None = None, device: str | torch.device = "cpu") -> None:
        from .mtcnn_nets import load_nets

        _load_vision_ops()
        self.config = config or DetectConfig()
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = load_nets(self.device)

    def describe(self) -> str:
        """Provenance text of the detector's settings (:meth:`DetectConfig.describe`)."""
        return self.config.describe()

    @torch.inference_mode()
    def __call__(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Faces in each of ``frames`` (H×W×3 uint8 RGB arrays), in their pixels. Each frame is
        first downscaled so its longer side is at most ``max_side``."""
        if len(frames) == 0:
            return []
        h, w = frames[0].shape[:2]
        if any(f.shape != frames[0].shape for f in frames):
            # Different sizes cannot share a pyramid: detect each size group separately.
            return [self([f])[0] for f in frames]
        return self.detect_scaled([downscale(f, self.config.max_side)[0] for f in frames], (w, h))

    def detect_frames(self, frames: Sequence[AnalysisFrame | Frame]) -> list[Detections]:
        """Faces in each of ``frames``: :class:`~ferbatch.prepare.AnalysisFrame` objects
        (their ``det_image``, already downscaled) or decoded :class:`~ferbatch.decode.Frame`
        objects (their ``image``); boxes in each frame's displayed pixels."""
        if not frames:
            return []
        if not any(isinstance(f, AnalysisFrame) for f in frames):
            return self([f.image for f in frames])  # type: ignore[union-attr]
        first = frames[0]
        if not all(isinstance(f, AnalysisFrame) and f.size == first.size
                   and f.det_image.shape == first.det_image.shape for f in frames):
            return [self.detect_frames([f])[0] for f in frames]
        return self.detect_scaled([f.det_image for f in frames], first.size)  # type: ignore[union-attr]

    @torch.inference_mode()
    def detect_scaled(self, small: Sequence[np.ndarray], size: tuple[int, int]) -> list[Detections]:
        """Faces in frames of ``size`` = (width, height) given already downscaled for detection:
        ``small`` are same-shaped h×w×3 uint8 RGB arrays of :func:`~ferbatch.prepare.detection_size`
        (``max_side``) of ``size``. Boxes and landmarks come back in the ``size`` frame's pixels.
        Raises ``ValueError`` when an image does not have that detection size."""
        if len(small) == 0:
            return []
        w, h = size
        ratio, expect = detection_size(w, h, self.config.max_side)
        if any((f.shape[1], f.shape[0]) != expect for f in small):
            raise ValueError(f"detection images must be {expect[0]}x{expect[1]} for a {w}x{h} frame "
                             f"(max_side {self.config.max_side}), got {small[0].shape[1]}x{small[0].shape[0]}")
        # N×H×W×3 memory viewed as NCHW = channels-last, what the networks run fastest on
        batch = upload(np.stack(small), self.device).permute(0, 3, 1, 2).float()
        min_face = max(12.0, self.config.min_face_size * ratio)
        boxes, scores, points, image_idx = self._cascade(batch, min_face)
        # one device-to-host copy per batch, then per-frame selection on the host
        boxes = (boxes / ratio).cpu().numpy()
        points = (points / ratio).cpu().numpy()
        scores, image_idx = scores.cpu().numpy(), image_idx.cpu().numpy()
        return [self._frame_detections(boxes, scores, points, image_idx == i, w, h)
                for i in range(len(small))]

    @torch.inference_mode()
    def refine(self, frame: np.ndarray, boxes: np.ndarray,
               size: tuple[int, int] | None = None) -> Detections:
        """Check and refine given face boxes on one frame with MTCNN's last stage (O-Net).

        ``frame``: H×W×3 uint8 RGB; ``boxes``: K×4 (x1, y1, x2, y2) in its pixels, e.g. carried
        by a tracker. With ``size`` = (width, height), ``frame`` is that frame already
        downscaled for detection (an :class:`~ferbatch.prepare.AnalysisFrame`'s ``det_image``)
        and ``boxes`` are in the ``size`` frame's pixels. O-Net sees each box squared, as in the
        cascade, on the frame downscaled to ``max_side``. Returns K rows in the order of
        ``boxes`` (neither filtered nor sorted): the regressed boxes (clipped to the frame),
        O-Net's face probability as the score, and the 5 landmarks, as :meth:`__call__` gives
        them for detected faces. Raises ``ValueError`` when ``size`` is given and ``frame`` is
        not that frame's detection-size image.
        """
        w, h = size if size is not None else (frame.shape[1], frame.shape[0])
        if size is not None:
            ratio, (dw, dh) = detection_size(w, h, self.config.max_side)
            if frame.shape[:2] != (dh, dw):
                raise ValueError(f"refine(size={size}): the frame is {frame.shape[1]}x"
                                 f"{frame.shape[0]}, not the {dw}x{dh} detection image of a "
                                 f"{w}x{h} frame (max side {self.config.max_side})")
        if len(boxes) == 0:
            return Detections.empty()
        if size is None:
            frame, ratio = downscale(frame, self.config.max_side)
        squares = _square(torch.as_tensor(np.asarray(boxes, np.float32) * ratio))
        # only the part of the frame the squares cover goes to the device (outside reads 0 either way)
        fh, fw = frame.shape[:2]
        x0, y0 = (max(0, int(v)) for v in squares[:, :2].min(0).values.floor().tolist())
        x1, y1 = (int(v) for v in squares[:, 2:].max(0).values.ceil().tolist())
        x1, y1 = max(x0 + 1, min(fw, x1 + 1)), max(y0 + 1, min(fh, y1 + 1))
        part = np.ascontiguousarray(frame[y0:y1, x0:x1])
        image = upload(part[None], self.device).permute(0, 3, 1, 2).float().contiguous()
        local = (squares - torch.tensor([x0, y0, x0, y0], dtype=squares.dtype)).to(self.device)
        idx = torch.zeros(len(squares), dtype=torch.long, device=self.device)
        reg, marks, prob = _padded(self.onet, self._crop(image, local, idx, 48))
        squares = squares.to(self.device)
        bw = (squares[:, 2] - squares[:, 0]).unsqueeze(1)
        bh = (squares[:, 3] - squares[:, 1]).unsqueeze(1)
        points = torch.stack([squares[:, :1] + bw * marks[:, :5],
                              squares[:, 1:2] + bh * marks[:, 5:]], 2)
        out = (_regress(squares, reg) / ratio).cpu().numpy()
        out[:, 0::2] = out[:, 0::2].clip(0, w)
        out[:, 1::2] = out[:, 1::2].clip(0, h)
        return Detections(out.astype(np.float32), prob[:, 1].cpu().numpy().astype(np.float32),
                          (points / ratio).cpu().numpy().astype(np.float32))

    def _frame_detections(self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                          mine: np.ndarray, w: int, h: int) -> Detections:
        """The detections of one frame (rows ``mine``) above ``min_score``, best first, boxes
        clipped to the ``w``×``h`` frame."""
        sel = mine & (scores >= self.config.min_score)
        if not sel.any():
            return Detections.empty()
        b, s, p = boxes[sel], scores[sel], points[sel]
        order = np.argsort(-s, kind="stable")
        b, s, p = b[order].copy(), s[order], p[order]
        b[:, 0::2] = b[:, 0::2].clip(0, w)
        b[:, 1::2] = b[:, 1::2].clip(0, h)
        return Detections(b.astype(np.float32), s.astype(np.float32), p.astype(np.float32))

    def _crop(self, images: torch.Tensor, boxes: torch.Tensor, image_idx: torch.Tensor,
              size: int) -> torch.Tensor:
        """Crop-and-resize every box in one call; outside the frame reads as 0 (as in the
        original MTCNN's zero padding). Returns normalised N×3×size×size."""
        rois = torch.cat([image_idx.float().unsqueeze(1), boxes], 1)
        crops = torch.ops.torchvision.roi_align(images, rois, 1.0, size, size, 2, True)
        return (crops - 127.5) * 0.0078125

    def _cascade(self, images: torch.Tensor, min_face: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t1, t2, t3 = self.config.thresholds
        n, _, h, w = images.shape
        planar = images.contiguous()  # roi_align wants NCHW: convert once, not on each call
        empty = (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 5, 2),
                 torch.zeros(0, dtype=torch.long))

        # Stage 1: P-Net over an image pyramid; the first scale maps min_face to 12 px.
        scale = 12.0 / min_face
        all_boxes, all_scores, all_idx = [], [], []
        scaled = images
        while min(h, w) * scale >= 12:
            sh, sw = math.ceil(h * scale), math.ceil(w * scale)
            # each level is resampled from the previous one: cheaper than from full size
            scaled = F.interpolate(scaled, size=(sh, sw), mode="area")
            reg, prob = self.pnet(((scaled - 127.5) * 0.0078125)
                                  .contiguous(memory_format=torch.channels_last))
            score = prob[:, 1]
            hit = (score >= t1).nonzero()
            if hit.shape[0]:
                b_i, y, x = hit[:, 0], hit[:, 1].float(), hit[:, 2].float()
                cand = torch.stack([(2 * x + 1) / scale, (2 * y + 1) / scale,
                                    (2 * x + 12) / scale, (2 * y + 12) / scale], 1).floor()
                s = score[b_i, hit[:, 1], hit[:, 2]]
                r = reg[b_i, :, hit[:, 1], hit[:, 2]]
                keep = _batched_nms(cand, s, b_i, 0.5)
                all_boxes.append(_regress(cand[keep], r[keep]))
                all_scores.append(s[keep])
                all_idx.append(b_i[keep])
            scale *= self.config.factor
        if not all_boxes:
            return empty
        boxes, scores, idx = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_idx)
        keep = _batched_nms(boxes, scores, idx, 0.7)
        boxes, idx = _square(boxes[keep]), idx[keep]

        # Stage 2: R-Net refines and rejects candidates.
        reg, prob = _padded(self.rnet, self._crop(planar, boxes, idx, 24))
        ok = prob[:, 1] >= t2
        if not bool(ok.any()):
            return empty
        boxes, scores, idx, reg = boxes[ok], prob[ok, 1], idx[ok], reg[ok]
        keep = _batched_nms(boxes, scores, idx, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        idx = idx[keep]

        # Stage 3: O-Net gives final scores, boxes and 5 landmarks.
        reg, marks, prob = _padded(self.onet, self._crop(planar, boxes, idx, 48))
        ok = prob[:, 1] >= t3
        if not bool(ok.any()):
            return empty
        boxes, scores, idx, reg, marks = boxes[ok], prob[ok, 1], idx[ok], reg[ok], marks[ok]
        bw = (boxes[:, 2] - boxes[:, 0]).unsqueeze(1)
        bh = (boxes[:, 3] - boxes[:, 1]).unsqueeze(1)
        points = torch.stack([boxes[:, :1] + bw * marks[:, :5],
                              boxes[:, 1:2] + bh * marks[:, 5:]], 2)
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes, scores, idx, 0.7)
        return boxes[keep], scores[keep], points[keep], idx[keep]
