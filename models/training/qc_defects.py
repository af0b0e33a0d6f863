"""Acquisition defects applied to phantoms, so a pixel-QC model has labelled examples.

Each defect imitates what the detector would record, in detector units (0..4095,
bright = dense), before any display processing:

- underexposed: too few photons. The signal occupies a small slice of the
  detector range, quantum mottle (spatially correlated noise) is large next to it,
  and the densest regions receive nothing and clip at the white end.
- overexposed: too many photons. The least dense regions (air, lungs) saturate
  and burn out to a flat black, and what is left of the anatomy is compressed.
- rotated: the patient (or the cassette) turned by 15 to 180 degrees either way,
  sometimes with the uncovered corners showing, sometimes cropped past them.
- cropped: part of the lung fields is missing, cut off by a tight crop or hidden
  behind a collimator shutter (a straight, unexposed edge) on one or more sides.
  The label is measured, not assumed: it holds when at least `CROPPED_MIN_LOST` of
  the lung-field area is gone, whatever removed it (a zoomed rotation can, too).
- motion: the patient moved during the exposure. A linear motion kernel (9 to 25 px
  at 512 px, any direction) smears the anatomy of the whole image or a large part
  of it; the detector's own mottle, added afterwards, stays sharp.

Every image gets the harmless variation real ones have (a few degrees of tilt,
tighter collimation that leaves the lungs whole, shutter edges outside the lungs,
a little blur or sharpening, some fine texture, another tone curve), so that
"brighter, rougher, softer or more tightly framed than the phantom average" is not
what the model learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radstream.services.synthetic.phantoms import DETECTOR_MAX_VALUE, make_phantom

UNDEREXPOSED = "underexposed"
OVEREXPOSED = "overexposed"
ROTATED = "rotated"
CROPPED = "cropped"
MOTION = "motion"
# The CNN's labels. MOTION is not among them: at 128 px the CNN reached only AUC ~0.63 on
# it. It is the one label of demo-motion (models/families/spectral.py), which measures it in
# the power spectrum. Motion-blurred films stay in the CNN's training data as negatives for
# its labels, so blur alone flags none of them.
QC_LABELS = (UNDEREXPOSED, OVEREXPOSED, ROTATED, CROPPED)

MIN_ROTATION_DEG = 15.0
MAX_ROTATION_DEG = 180.0
CLEAN_TILT_DEG = 6.0
MOTION_KERNEL_PX = (9.0, 25.0)  # at 512 px
CROPPED_MIN_LOST = 0.12  # fraction of the lung fields cut off that makes a film "cropped"
CLEAN_MAX_LOST = 0.01  # harmless framing loses at most this much; between the two is never drawn
SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class QcSample:
    image: np.ndarray  # float32 (H, W) detector units, bright = dense
    labels: frozenset[str]


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian noise blurred by the detector's point spread."""
    noise = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    if sigma_px > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma_px)
        noise /= max(float(noise.std()), 1e-6)
    return noise


def underexpose(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    low, high = np.percentile(image, [1.0, 99.0])
    span = max(float(high - low), 1.0)
    compressed = rng.uniform(0.03, 0.12) * DETECTOR_MAX_VALUE
    out = rng.uniform(0.55, 0.8) * DETECTOR_MAX_VALUE + (image - low) / span * compressed
    sigma = compressed * rng.uniform(0.1, 0.3)
    out += sigma * _correlated_noise(rng, image.shape, rng.uniform(0.8, 2.0))
    white = np.percentile(out, rng.uniform(75.0, 95.0))  # dense regions got no photons
    return np.clip(out, 0.0, white).astype(np.float32)


def overexpose(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    black = np.percentile(image, rng.uniform(35.0, 65.0))  # air and lungs burn out
    high = float(np.percentile(image, 99.5))
    kept = np.clip(image - black, 0.0, None) / max(high - black, 1.0)
    out = rng.uniform(20.0, 120.0) + kept * rng.uniform(0.15, 0.45) * DETECTOR_MAX_VALUE
    out += rng.uniform(2.0, 10.0) * _correlated_noise(rng, image.shape, 0.8) * (kept > 0)
    return np.clip(out, 0.0, DETECTOR_MAX_VALUE).astype(np.float32)


def rotate(image: np.ndarray, angle_deg: float, crop_corners: bool, fill: float) -> np.ndarray:
    """Rotate about the centre; with crop_corners, zoom until no uncovered corner shows."""
    h, w = image.shape
    scale = 1.0
    if crop_corners:
        c, s = abs(np.cos(np.radians(angle_deg))), abs(np.sin(np.radians(angle_deg)))
        scale = max((w * c + h * s) / w, (w * s + h * c) / h)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """A normalised line of `length_px` at `angle_deg`: the path of a uniformly moving patient."""
    size = int(np.ceil(length_px)) | 1
    kernel = np.zeros((size, size), dtype=np.float32)
    c, half = size // 2, (length_px - 1) / 2
    dx, dy = half * np.cos(np.radians(angle_deg)), half * np.sin(np.radians(angle_deg))
    shift = 4  # sub-pixel end points
    p0 = (int(round((c - dx) * 2**shift)), int(round((c - dy) * 2**shift)))
    p1 = (int(round((c + dx) * 2**shift)), int(round((c + dy) * 2**shift)))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smear the whole image, or (one time in three) a large part of it behind a soft boundary."""
    h, w = image.shape
    length = rng.uniform(*MOTION_KERNEL_PX) * min(h, w) / 512.0
    blurred = cv2.filter2D(image, -1, motion_kernel(length, rng.uniform(0.0, 180.0)),
                           borderType=cv2.BORDER_REFLECT)
    if rng.random() < 2 / 3:
        return blurred.astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0.0, 2 * np.pi)  # the moving part lies on one side of a line, covering 55-85 %
    along = (xs - w / 2) * np.cos(a) + (ys - h / 2) * np.sin(a)
    edge = np.percentile(along, rng.uniform(15.0, 45.0))
    weight = np.clip((along - edge) / (0.08 * min(h, w)) + 0.5, 0.0, 1.0)
    return (weight * blurred + (1 - weight) * image).astype(np.float32)


def _sharpness(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Harmless: a slightly softer (isotropic) or crisper rendering than the phantom's."""
    scale = min(image.shape) / 512.0
    soft = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5) * scale)
    if rng.random() < 0.5:
        return soft
    return (image + rng.uniform(0.3, 1.0) * (image - soft)).astype(np.float32)


def lung_fields(image: np.ndarray) -> np.ndarray:
    """The clean phantom's lung fields as a float mask: dark regions enclosed by the body."""
    h, w = image.shape
    smooth = cv2.GaussianBlur(image, (0, 0), 3.0)
    air, body = np.percentile(smooth, [1.0, 90.0])
    dark = (smooth < air + 0.6 * (body - air)).astype(np.uint8)
    k = max(3, int(min(h, w) * 0.04) | 1)
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=4)
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    enclosed = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (area > 0.01 * h * w)
    enclosed[0] = False
    return enclosed[labels].astype(np.float32)


@dataclass
class _Film:
    """The image and where its lung fields went, moved together by every geometric step."""

    image: np.ndarray
    lungs: np.ndarray
    lung_area: float  # in original pixels
    zoom: float = 1.0

    def lost(self) -> float:
        return 1.0 - float(self.lungs.sum()) / (self.zoom**2 * max(self.lung_area, 1.0))


def _rotated(film: _Film, angle: float, crop_corners: bool, fill: float) -> _Film:
    h, w = film.image.shape
    zoom = 1.0
    if crop_corners:
        c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
        zoom = max((w * c + h * s) / w, (w * s + h * c) / h)
    return _Film(rotate(film.image, angle, crop_corners, fill), rotate(film.lungs, angle, crop_corners, 0.0),
                 film.lung_area, film.zoom * zoom)


def _framed(film: _Film, depths: dict[str, float], shutter: dict[str, bool], fill: float,
            tilt_deg: float) -> _Film:
    """Cut `depths` (fractions of the side) off each side: sliced away, or behind a shutter."""
    h, w = film.image.shape
    image, lungs = film.image.copy(), film.lungs.copy()
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = np.tan(np.radians(tilt_deg))
    for side, depth in depths.items():
        if not shutter[side]:
            continue
        if side in ("left", "right"):
            inward = xs if side == "left" else w - 1 - xs
            hidden = inward < depth * w + slope * (ys - h / 2)
        else:
            inward = ys if side == "top" else h - 1 - ys
            hidden = inward < depth * h + slope * (xs - w / 2)
        image[hidden], lungs[hidden] = fill, 0.0
    cut = {s: (d if not shutter[s] else 0.0) for s, d in depths.items()}
    y0, y1 = int(cut.get("top", 0.0) * h), h - int(cut.get("bottom", 0.0) * h)
    x0, x1 = int(cut.get("left", 0.0) * w), w - int(cut.get("right", 0.0) * w)
    return _Film(image[y0:y1, x0:x1], lungs[y0:y1, x0:x1], film.lung_area, film.zoom)


def _shutter_fill(image: np.ndarray, rng: np.random.Generator) -> float:
    """Behind a collimator leaf no photons arrive (white); some systems mask it black instead."""
    if rng.random() < 0.75:
        return float(np.percentile(image, 99.5) * rng.uniform(1.0, 1.15))
    return float(np.percentile(image, 0.5))


def crop(film: _Film, rng: np.random.Generator) -> _Film:
    """The defect: one or two sides cut deep into the lung fields, by a crop or a shutter."""
    sides = list(rng.choice(SIDES, size=1 if rng.random() < 0.6 else 2, replace=False))
    shallow, deep = {"left": 0.25, "right": 0.25, "top": 0.28, "bottom": 0.33}, 0.45
    depths = {s: rng.uniform(shallow[s], deep) for s in sides}
    shutter = {s: rng.random() < 0.5 for s in sides}
    fill, tilt = _shutter_fill(film.image, rng), rng.uniform(-3.0, 3.0)
    out = _framed(film, depths, shutter, fill, tilt)
    for _ in range(8):  # a small lung or a tilted film: cut deeper
        if out.lost() >= CROPPED_MIN_LOST:
            break
        depths = {s: min(d * 1.15, 0.6) for s, d in depths.items()}
        out = _framed(film, depths, shutter, fill, tilt)
    return out


def _collimate(film: _Film, rng: np.random.Generator) -> _Film:
    """Harmless: a tighter field of view, or shutter edges, that leave the lungs whole."""
    sides = [s for s in SIDES if rng.random() < 0.5] or [SIDES[int(rng.integers(4))]]
    depths = {s: rng.uniform(0.02, 0.2) for s in sides}
    shutter = {s: rng.random() < 0.3 for s in sides}
    fill, tilt = _shutter_fill(film.image, rng), rng.uniform(-3.0, 3.0)
    out = _framed(film, depths, shutter, fill, tilt)
    for _ in range(8):  # came too close: frame a little looser
        if out.lost() <= CLEAN_MAX_LOST:
            return out
        depths = {s: d * 0.7 for s, d in depths.items()}
        out = _framed(film, depths, shutter, fill, tilt)
    return out if out.lost() <= CLEAN_MAX_LOST else film


def _tone(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tone curve that moves the image's mean brightness to a random level in its own range.

    Applied whatever the labels, so that overall brightness tells the model nothing: a
    defect must be recognised by clipping, flat burn-out, noise or geometry.
    """
    low, high = np.percentile(image, [0.5, 99.5])
    span = max(float(high - low), 1.0)
    unit = np.clip((image - low) / span, 0.0, 1.0)
    current = float(np.clip(unit.mean(), 0.02, 0.98))
    gamma = float(np.clip(np.log(rng.uniform(0.2, 0.8)) / np.log(current), 0.25, 4.0))
    return (low + unit**gamma * span).astype(np.float32)


def _texture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fine structure and normal-dose mottle, a little rougher than the smooth phantoms."""
    low, high = np.percentile(image, [0.5, 99.5])
    sigma = rng.uniform(0.0, 0.035) * max(float(high - low), 1.0)
    return image + sigma * _correlated_noise(rng, image.shape, rng.uniform(0.7, 2.5))


def make_qc_sample(rng: np.random.Generator, shape: tuple[int, int]) -> QcSample:
    """One phantom with independently drawn defects (about a quarter clean)."""
    image = make_phantom(rng, shape).image
    labels: set[str] = set()
    lungs = lung_fields(image)
    fill = float(np.percentile(image, 1.0))  # air: what an uncovered corner records
    if rng.random() < 0.2:
        image = motion_blur(image, rng)
        labels.add(MOTION)
    elif rng.random() < 0.4:
        image = _sharpness(image, rng)
    film = _Film(image, lungs, float(lungs.sum()))
    if rng.random() < 0.3:
        angle = rng.uniform(MIN_ROTATION_DEG, MAX_ROTATION_DEG) * rng.choice([-1.0, 1.0])
        rotated = _rotated(film, angle, crop_corners=rng.random() < 0.5, fill=fill)
        if CLEAN_MAX_LOST < rotated.lost() < CROPPED_MIN_LOST:  # neither whole nor clearly cut
            rotated = _rotated(film, angle, crop_corners=False, fill=fill)
        film = rotated
        labels.add(ROTATED)
    elif rng.random() < 0.7:
        film = _rotated(film, rng.uniform(-CLEAN_TILT_DEG, CLEAN_TILT_DEG), crop_corners=True, fill=fill)
    if rng.random() < 0.2:
        film = crop(film, rng)
    elif rng.random() < 0.5 and film.lost() <= CLEAN_MAX_LOST:
        film = _collimate(film, rng)
    if film.lost() >= CROPPED_MIN_LOST:
        labels.add(CROPPED)
    image = _texture(film.image, rng)
    exposure = rng.random()
    if exposure < 0.2:
        image = underexpose(image, rng)
        labels.add(UNDEREXPOSED)
    elif exposure < 0.4:
        image = overexpose(image, rng)
        labels.add(OVEREXPOSED)
    if rng.random() < 0.8:
        image = _tone(image, rng)
    return QcSample(np.ascontiguousarray(image, dtype=np.float32), frozenset(labels))
