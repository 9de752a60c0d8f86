"""A deterministic synthetic abdominal CT: body, fat, muscle, spine, lungs, liver with lesions, kidneys, aorta.

Anatomy is drawn in patient millimetres (LPS; the patient's right is -x), so a
phantom has the same anatomy at any voxel size: ``ct_phantom(seed)`` picks a
random pixel and slice spacing (the training data), ``ct_phantom(seed, shape=...,
spacing=...)`` fixes them (a 512×512×200 benchmark series). Values are HU with
realistic means (portal-venous phase) and Gaussian noise; the label map marks
liver (1), kidney (2) and lesion (3). Synthetic: no patient is behind it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medical.io.volume import Volume

LABELS = ["background", "liver", "kidney", "lesion"]
HU = {"air": -1000, "fat": -100, "soft_tissue": 35, "muscle": 50, "lung": -850, "bone": 450, "cortical_bone": 900,
      "liver": 105, "lesion": 25, "kidney": 165, "aorta": 190}
NOISE_HU = 12.0
FIELD_OF_VIEW_MM = 384.0
Z_RANGE_MM = (-110.0, 100.0)  # superior-inferior extent covered by a default phantom, around its centre


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in LPS mm, rotated by ``angle`` (radians) about the z axis."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle: float = 0.0

    def inside(self, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        dx, dy = x - self.center[0], y - self.center[1]
        c, s = np.cos(self.angle), np.sin(self.angle)
        u, v = c * dx + s * dy, -s * dx + c * dy
        w = (z - self.center[2]) / self.radii[2]
        return (u / self.radii[0]) ** 2 + (v / self.radii[1]) ** 2 + w * w <= 1.0


@dataclass(frozen=True)
class Anatomy:
    """The random draw behind one phantom."""

    body: tuple[float, float]  # half-axes (x, y) of the elliptic body, mm
    fat: float  # subcutaneous fat thickness, mm
    diaphragm: float  # z (mm) of the lung bases
    liver: tuple[Ellipsoid, ...]
    lesions: tuple[Ellipsoid, ...]
    kidneys: tuple[Ellipsoid, ...]


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Organ sizes and positions, each varied around an adult abdomen."""
    jitter = lambda scale: float(rng.uniform(-scale, scale))  # noqa: E731
    size = lambda base: base * float(rng.uniform(0.88, 1.12))  # noqa: E731
    body = (size(150.0), size(110.0))
    liver_main = Ellipsoid((-65 + jitter(8), -5 + jitter(8), 15 + jitter(10)), (size(70), size(62), size(68)), jitter(0.25))
    liver_left = Ellipsoid((liver_main.center[0] + 55, liver_main.center[1] - 30, liver_main.center[2] + 15),
                           (size(42), size(28), size(34)), jitter(0.3))
    lesions = []
    for _ in range(int(rng.integers(1, 4))):
        radius = float(rng.uniform(14, 22))
        # Inside the main lobe, at most 55% of the way to its surface so the lesion stays in the liver.
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        reach = float(rng.uniform(0, 0.55))
        center = tuple(float(c + d * r * reach) for c, d, r in zip(liver_main.center, direction, liver_main.radii))
        lesions.append(Ellipsoid(center, (radius, radius * float(rng.uniform(0.85, 1.15)), radius)))
    kidneys = tuple(
        Ellipsoid((side * (72 + jitter(6)), 55 + jitter(6), -45 + jitter(10)), (size(27), size(24), size(52)), side * (0.35 + jitter(0.15)))
        for side in (-1.0, 1.0)
    )
    return Anatomy(body, float(rng.uniform(12, 28)), float(rng.uniform(55, 75)), (liver_main, liver_left), tuple(lesions), kidneys)


def draw_grid(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """A random acquisition grid: pixel spacing 3.6–4.6 mm over a 384 mm field of view, slices 3.5–5 mm apart."""
    pixel = float(rng.uniform(3.6, 4.6))
    step = float(rng.uniform(3.5, 5.0))
    side = int(round(FIELD_OF_VIEW_MM / pixel))
    slices = int(round((Z_RANGE_MM[1] - Z_RANGE_MM[0]) / step))
    return (slices, side, side), (step, pixel, pixel)


def ct_phantom(seed: int, shape=None, spacing=None) -> tuple[Volume, Volume]:
    """One phantom: (CT in HU, int16; label map, uint8) on the same canonical-orientation grid.

    Deterministic in ``seed`` (and in ``shape``/``spacing`` when given; they are
    drawn from the seed otherwise). Built slice by slice, so a 512×512×200 series
    needs no more than one slice of temporaries.
    """
    rng = np.random.default_rng([seed, 0])
    anatomy = draw_anatomy(rng)
    drawn_shape, drawn_spacing = draw_grid(rng)
    shape = tuple(int(s) for s in (shape or drawn_shape))
    spacing = tuple(float(s) for s in (spacing or drawn_spacing))
    # Centre the grid on the anatomy, with a small random table offset.
    centre = np.array([0.0, float(rng.uniform(-10, 10)), (Z_RANGE_MM[0] + Z_RANGE_MM[1]) / 2 + float(rng.uniform(-8, 8))])
    extent = (np.asarray(shape, dtype=float)[::-1] - 1) * np.asarray(spacing)[::-1]  # (x, y, z) mm
    origin = centre - extent / 2
    image = np.empty(shape, dtype=np.int16)
    labels = np.empty(shape, dtype=np.uint8)
    y, x = np.meshgrid(origin[1] + np.arange(shape[1]) * spacing[1], origin[0] + np.arange(shape[2]) * spacing[2], indexing="ij")
    for k in range(shape[0]):
        z = origin[2] + k * spacing[0]
        hu, label = _slice(anatomy, x, y, z)
        noise = np.random.default_rng([seed, 1, k]).normal(0.0, NOISE_HU, size=hu.shape)
        inside = hu > HU["air"]
        image[k] = np.rint(np.where(inside, hu + noise, hu)).astype(np.int16)
        labels[k] = label
    metadata = {"modality": "CT", "units": "HU", "synthetic": True, "phantom_seed": seed}
    ct = Volume.from_spacing(image, spacing, origin, metadata)
    return ct, ct.with_array(labels, labels=LABELS)


def _slice(anatomy: Anatomy, x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """HU and labels of one axial slice at height ``z`` (mm)."""
    a, b = anatomy.body
    radial = (x / a) ** 2 + (y / b) ** 2
    inner = (x / (a - anatomy.fat)) ** 2 + (y / (b - anatomy.fat)) ** 2
    hu = np.full(x.shape, float(HU["air"]))
    hu[radial <= 1] = HU["fat"]
    hu[inner <= 1] = HU["soft_tissue"]
    # Paraspinal muscles and the spine, posterior.
    spine_y = b - anatomy.fat - 40
    for side in (-1, 1):
        hu[((x - side * 35) / 28) ** 2 + ((y - spine_y) / 22) ** 2 <= 1] = HU["muscle"]
    vertebra = (x / 20) ** 2 + ((y - spine_y + 32) / 17) ** 2
    hu[vertebra <= 1] = HU["cortical_bone"]
    hu[vertebra <= 0.6] = HU["bone"]
    hu[(x - 18) ** 2 + (y - spine_y + 62) ** 2 <= 11**2] = HU["aorta"]
    if z > anatomy.diaphragm:
        for side in (-1, 1):
            dome = anatomy.diaphragm + 25 * (1 - ((x - side * 70) / 60) ** 2 - ((y + 5) / 70) ** 2)
            lung = (((x - side * 70) / 58) ** 2 + ((y + 5) / 72) ** 2 <= 1) & (z > dome)
            hu[lung] = HU["lung"]
    label = np.zeros(x.shape, dtype=np.uint8)
    inside = inner <= 1
    liver = np.zeros(x.shape, dtype=bool)
    for part in anatomy.liver:
        liver |= part.inside(x, y, z)
    liver &= inside & (hu != HU["lung"])
    hu[liver], label[liver] = HU["liver"], 1
    for lesion in anatomy.lesions:
        spot = lesion.inside(x, y, z) & liver
        hu[spot], label[spot] = HU["lesion"], 3
    for kidney in anatomy.kidneys:
        organ = kidney.inside(x, y, z) & inside & ~liver
        hu[organ], label[organ] = HU["kidney"], 2
    return hu, label
