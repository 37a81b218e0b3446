"""A reproducible set of degraded 640×480 camera frames for comparing barcode decoders.

Every frame is derived from one seed, so two runs (or two machines) measure the same images.
The QR symbols are encoded with the ``qrcode`` package, independent of every decoder under
test, and put on the simulator's background scene; each degradation draws its severity from
a range, so decode rates are graded rather than all-or-nothing. Each frame finally goes
through JPEG at quality 80, as frames from an MJPEG camera do.

Degradations (``QR_KINDS``): clean, blur, glare, perspective, low_light, small, noise, and
none (no code at all: the right answer is an empty result).
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import qrcode
from qrcode.constants import ERROR_CORRECT_M

from simulator.camera import FRAME_HEIGHT, FRAME_WIDTH, blank_frame, ean13_modules

__all__ = ["EAN_KINDS", "QR_KINDS", "Sample", "ean_samples", "qr_samples", "reader_card_token"]

QR_KINDS = ("clean", "blur", "glare", "perspective", "low_light", "small", "noise", "none")
EAN_KINDS = ("clean", "blur", "rotated", "wrong_check")

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One frame and what a correct decoder returns for it (``None``: nothing)."""

    kind: str
    frame: np.ndarray  # BGR uint8, 640×480
    expected: str | None


def reader_card_token(rng: np.random.Generator) -> str:
    """A reader e-card payload shaped like lendbox's: ``LBX1:`` + fields + a signature, 60–120 chars."""
    reader = "".join(rng.choice(list(string.digits), size=10))
    expiry = int(rng.integers(1_700_000_000, 1_900_000_000))
    head = f"LBX1:r={reader};t={int(rng.integers(1, 4))};x={expiry};s="
    total = int(rng.integers(60, 121))
    sig = "".join(rng.choice(list(_TOKEN_ALPHABET), size=max(8, total - len(head))))
    return head + sig


def _qr_symbol(text: str) -> np.ndarray:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    matrix = np.array(qr.get_matrix(), dtype=bool)
    return np.where(matrix, 0, 255).astype(np.uint8)


def _place(
    frame: np.ndarray, symbol: np.ndarray, quad: np.ndarray
) -> np.ndarray:
    """Warp a greyscale symbol onto the quadrilateral ``quad`` (4×2, clockwise from top-left)."""
    h, w = symbol.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    size = (FRAME_WIDTH, FRAME_HEIGHT)
    # Upscale first so INTER_LINEAR edges look like optics, not like nearest-neighbour steps.
    scale = max(1, int(np.ceil(np.linalg.norm(quad[1] - quad[0]) / w)))
    big = cv2.resize(symbol, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    m = m @ np.diag([1 / scale, 1 / scale, 1]).astype(np.float64)
    warped = cv2.warpPerspective(big, m, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full_like(big, 255), m, size, flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    out = frame.astype(np.float32) * (1 - alpha) + warped[:, :, None].astype(np.float32) * alpha
    return out.astype(np.uint8)


def _square(rng: np.random.Generator, size: float, max_angle: float) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle))
    half = size / 2
    margin = half * 1.45
    cx = rng.uniform(margin, FRAME_WIDTH - margin)
    cy = rng.uniform(margin, FRAME_HEIGHT - margin)
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rot.T + [cx, cy]


def _jpeg(frame: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    noisy = frame.astype(np.float32) + rng.normal(0, sigma, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _qr_frame(kind: str, rng: np.random.Generator, seed: int) -> Sample:
    frame = blank_frame(seed)
    if kind == "none":
        frame = cv2.GaussianBlur(frame, (5, 5), 0.8)
        return Sample(kind=kind, frame=_jpeg(_noise(frame, rng, 4)), expected=None)
    text = reader_card_token(rng)
    symbol = _qr_symbol(text)
    size = rng.uniform(75, 110) if kind == "small" else rng.uniform(170, 300)
    quad = _square(rng, size, max_angle=45 if kind == "perspective" else 12)
    if kind == "perspective":
        # Tilt: pull two adjacent corners in and push the others out, up to ~35 % of the size.
        jitter = rng.uniform(-0.35, 0.35, size=(4, 2)) * size
        quad = quad + jitter
    frame = _place(frame, symbol, quad)
    frame = cv2.GaussianBlur(frame, (5, 5), 0.8)  # lens
    if kind == "blur":
        sigma = rng.uniform(1.5, 4.0)
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    elif kind == "glare":
        centre = quad.mean(axis=0) + rng.uniform(-0.3, 0.3, 2) * size
        radius = rng.uniform(0.25, 0.6) * size
        ys, xs = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float32)
        d2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / radius**2
        glow = rng.uniform(140, 255) * np.exp(-d2)
        frame = np.clip(frame.astype(np.float32) + glow[:, :, None], 0, 255).astype(np.uint8)
    elif kind == "low_light":
        gain = rng.uniform(0.06, 0.2)
        frame = _noise((frame.astype(np.float32) * gain).astype(np.uint8), rng, 2.5)
    elif kind == "noise":
        frame = _noise(frame, rng, rng.uniform(20, 50))
    return Sample(kind=kind, frame=_jpeg(frame), expected=text)


def qr_samples(per_kind: int = 12, seed: int = 2024) -> Iterator[Sample]:
    """``per_kind`` frames of each of :data:`QR_KINDS`, deterministic for a given seed."""
    for k, kind in enumerate(QR_KINDS):
        for i in range(per_kind):
            frame_seed = seed * 1000 + k * 100 + i
            yield _qr_frame(kind, np.random.default_rng(frame_seed), frame_seed)


def _random_isbn(rng: np.random.Generator) -> str:
    body = "978" + "".join(rng.choice(list(string.digits), size=9))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _ean_frame(kind: str, rng: np.random.Generator, seed: int) -> Sample:
    isbn = _random_isbn(rng)
    expected: str | None = isbn
    digits = isbn
    if kind == "wrong_check":
        digits = isbn[:12] + str((int(isbn[12]) + int(rng.integers(1, 10))) % 10)
        expected = None
    modules = "0" * 11 + ean13_modules(digits) + "0" * 11
    row = np.array([0 if m == "1" else 255 for m in modules], np.uint8)
    symbol = np.tile(row, (70, 1))
    symbol = cv2.copyMakeBorder(symbol, 6, 6, 0, 0, cv2.BORDER_CONSTANT, value=255)
    width = rng.uniform(260, 400)
    h, w = symbol.shape
    angle = np.deg2rad(rng.uniform(-30, 30) if kind == "rotated" else rng.uniform(-4, 4))
    cx, cy = FRAME_WIDTH / 2 + rng.uniform(-60, 60), FRAME_HEIGHT / 2 + rng.uniform(-60, 60)
    half = np.array([width / 2, width * h / w / 2])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    frame = _place(blank_frame(seed), symbol, corners @ rot.T + [cx, cy])
    frame = cv2.GaussianBlur(frame, (5, 5), 0.8)
    if kind == "blur":
        frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(1.0, 2.0))
    return Sample(kind=kind, frame=_jpeg(_noise(frame, rng, 3)), expected=expected)


def ean_samples(per_kind: int = 8, seed: int = 2024) -> Iterator[Sample]:
    """``per_kind`` book-barcode frames of each of :data:`EAN_KINDS` (ISBN-13 symbols)."""
    for k, kind in enumerate(EAN_KINDS):
        for i in range(per_kind):
            frame_seed = seed * 1000 + 500 + k * 100 + i
            yield _ean_frame(kind, np.random.default_rng(frame_seed), frame_seed)
