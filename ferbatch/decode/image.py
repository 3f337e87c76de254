"""Still images (JPEG, PNG, WebP) from bytes: the decode stage for ``ferbatch serve``.

Pillow decodes; the EXIF orientation is applied (what a viewer displays, as the video decoder
applies the display matrix), and the result is RGB uint8 H×W×3 like a decoded video frame, so
the detector and the crops treat both alike.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from ..errors import ImageError, UnsupportedImageError

#: accepted formats: Pillow's format name → media type
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
#: images larger than this many pixels are refused (decompression-bomb guard)
MAX_PIXELS = 50_000_000


def sniff(data: bytes) -> str | None:
    """The format (``JPEG``, ``PNG``, ``WEBP``) the first bytes announce, or ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode a JPEG, PNG or WebP image to RGB uint8 H×W×3, EXIF orientation applied.

    Raises :class:`UnsupportedImageError` when the bytes are not one of those formats and
    :class:`ImageError` (naming ``name`` and the reason) when they are but cannot be decoded,
    or the image has more than :data:`MAX_PIXELS` pixels.
    """
    from PIL import Image, ImageOps

    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedImageError(f"{name}: not a JPEG, PNG or WebP image "
                                    f"({len(data)} bytes starting {data[:8].hex(' ') or 'empty'})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageError(f"{name}: {img.width}x{img.height} is more than "
                                     f"{MAX_PIXELS // 1_000_000} megapixels")
                rgb = ImageOps.exif_transpose(img).convert("RGB")
                return np.asarray(rgb, dtype=np.uint8)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: cannot decode {fmt}: {exc}") from exc
