"""A realistic synthetic dataset in the raw layout, for demos, tests and benchmarks.

Each case is a "body" (zero outside, as in skull-stripped MRI) with a smooth textured
background, an organ (label 1, large, moderate contrast) and a lesion (label 2, small, strong
contrast, inside or at the edge of the organ). Shapes, positions, orientations, intensity
offset and scale, noise and spacing vary per case. :func:`make_video_dataset` writes a sparsely
annotated one instead: echocardiography-like videos labelled in two frames, the rest ``ignore``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage
from autounet.progress import progress

from autounet.errors import WorkspaceError
from autounet.io.atomic import check_writable
from autounet.io.dataset_json import write_dataset_json
from autounet.io.geometry import FLAT_AXIS_SPACING, Geometry
from autounet.io.image_io import write_image, write_segmentation
from autounet.workspace import RawPaths

LABELS = {"background": 0, "organ": 1, "lesion": 2}
# intensity of (background, organ, lesion) per channel; channel 1 has a different contrast
CONTRASTS = [(100.0, 150.0, 210.0), (120.0, 70.0, 190.0), (60.0, 110.0, 40.0)]


def _random_rotation(rng: np.random.Generator, dims: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dims, dims)))
    return q * np.sign(np.diag(r))


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], sigma_vox: Sequence[float]) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma_vox, mode="reflect")
    return f / (f.std() + 1e-8)


def _blob(coords: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray,
          wobble: np.ndarray) -> np.ndarray:
    """Inside of a rotated, smoothly deformed ellipsoid (coords: (D, ...) in mm)."""
    rel = np.tensordot(rot, coords - center.reshape((-1,) + (1,) * (coords.ndim - 1)), axes=1)
    f = sum((rel[i] / radii[i]) ** 2 for i in range(len(radii)))
    return f < 1 + 0.35 * wobble


def synth_case(rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...],
               channels: int, zero_outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """One case: images (C, *shape) float32 and labels (*shape) uint8."""
    dims = len(shape)
    extent = np.array(shape) * np.array(spacing)
    coords = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij"))
    sigma = [max(1.0, n / 6) for n in shape]
    body = _blob(coords, extent / 2, extent * rng.uniform(0.42, 0.5, dims), np.eye(dims),
                 0.3 * _smooth_field(rng, shape, sigma))
    organ_r = extent * rng.uniform(0.18, 0.28, dims)
    organ_c = extent / 2 + rng.uniform(-0.08, 0.08, dims) * extent
    organ = _blob(coords, organ_c, organ_r, _random_rotation(rng, dims), 0.4 * _smooth_field(rng, shape, sigma)) & body
    direction = rng.normal(size=dims)
    lesion_c = organ_c + direction / np.linalg.norm(direction) * organ_r * rng.uniform(0.2, 0.8)
    lesion = _blob(coords, lesion_c, organ_r * rng.uniform(0.4, 0.6), _random_rotation(rng, dims),
                   0.5 * _smooth_field(rng, shape, [s / 2 for s in sigma])) & body
    seg = np.zeros(shape, np.uint8)
    seg[organ] = 1
    seg[lesion] = 2
    images = []
    for c in range(channels):
        bg, org, les = CONTRASTS[c % len(CONTRASTS)]
        clean = np.choose(seg, [bg, org, les]).astype(np.float32)
        clean = ndimage.gaussian_filter(clean, 0.7)  # partial volume at edges
        texture = 12 * _smooth_field(rng, shape, [max(1.0, n / 12) for n in shape])
        scale, offset = rng.uniform(0.7, 1.4), rng.uniform(-30, 30)
        img = (clean + texture + rng.normal(0, 8, shape)) * scale + offset
        if zero_outside:
            img = np.where(body, np.maximum(img, 1.0), 0.0)
        images.append(img.astype(np.float32))
    return np.stack(images), seg


def _clear(out: Path, overwrite: bool) -> None:
    """Refuse to write into a folder that holds anything, unless ``overwrite``: then remove the
    raw layout it holds (images, labels, dataset.json), so that old and new cases never mix."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise WorkspaceError(f"{out}: not empty; a new example dataset would mix with what it holds. Choose an "
                             "empty folder, or pass --overwrite to replace the dataset in it")
    raw = RawPaths(out)
    for folder in (raw.images("Tr"), raw.labels("Tr"), raw.images("Ts"), raw.labels("Ts")):
        shutil.rmtree(folder, ignore_errors=True)
    raw.dataset_json.unlink(missing_ok=True)


def make_example_dataset(out_dir: Path, dims: int = 3, cases: int = 20, channels: int = 1,
                         anisotropic: bool = False, seed: int = 0, test_cases: int | None = None,
                         shape: Sequence[int] | None = None, overwrite: bool = False) -> Path:
    """Write a synthetic dataset (training and test images and labels, dataset.json) into an
    empty or new folder (``overwrite``: replace the dataset a folder holds).

    dims=3 writes NIfTI (one file per channel); dims=2 writes PNG (channels=3: one RGB file).
    shape : typical (Z, Y, X) or (Y, X) per case; each case varies around it.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if dims == 2 and channels not in (1, 2, 3):
        raise ValueError("2D example datasets have 1, 2 (two PNGs) or 3 (one RGB PNG) channels")
    if cases < 2:
        raise ValueError("an example dataset needs at least 2 training cases")
    out = Path(out_dir)
    _clear(out, overwrite)
    check_writable(out)
    n_test = max(1, cases // 5) if test_cases is None else test_cases
    if dims == 3:
        base_spacing = np.array([3.0, 0.8, 0.8] if anisotropic else [1.0, 1.0, 1.0])
        base_shape = np.array(shape or ((20, 64, 64) if anisotropic else (48, 56, 56)))
        ending = ".nii.gz"
    else:
        base_spacing = np.array([1.0, 1.0])
        base_shape = np.array(shape or (128, 128))
        ending = ".png"
    rgb = dims == 2 and channels == 3
    names = ["rgb_to_0_1"] * 3 if rgb else ["T1", "T2", "FLAIR"][:channels] if dims == 3 else ["gray", "red"][:channels]
    for split, n, folder in (("Tr", cases, "train"), ("Ts", n_test, "test")):
        for i in progress(range(n), desc=f"example {folder} cases", unit="case"):
            case_id = f"case{'_ts' if split == 'Ts' else ''}_{i:03d}"
            case_rng = np.random.default_rng([seed, i, split == "Ts"])
            sh = tuple(int(max(8, round(v))) for v in base_shape * case_rng.uniform(0.85, 1.15, len(base_shape)))
            sp = tuple(float(v) for v in base_spacing * (case_rng.uniform(0.9, 1.1, len(base_spacing)) if dims == 3 else 1))
            images, seg = synth_case(case_rng, sh, sp, channels, zero_outside=dims == 3)
            if dims == 3:
                geo = Geometry(spacing=sp, origin=tuple(case_rng.uniform(-50, 50, 3)), direction=tuple(np.eye(3).ravel()),
                               shape=sh, file_dims=3)
                files = [(images[c].round().astype(np.int16), c) for c in range(channels)]
            else:
                geo = Geometry(spacing=(FLAT_AXIS_SPACING,) + sp, origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                               shape=(1,) + sh, file_dims=2)
                pix = np.clip(images, 0, 255).round().astype(np.uint8)[:, None]
                files = [(pix, 0)] if rgb else [(pix[c], c) for c in range(channels)]
                seg = seg[None]
            for arr, channel in files:
                write_image(arr, geo, RawPaths(out).image_file(case_id, channel, ending, split))
            write_segmentation(seg, geo, RawPaths(out).label_file(case_id, ending, split))
    write_dataset_json(out, names, dict(LABELS), cases, ending, out.name,
                       description=f"autounet synthetic example ({dims}D, {channels} channel(s), "
                                   f"{'anisotropic' if anisotropic else 'isotropic'}, seed {seed})")
    return out


VIDEO_LABELS = {"background": 0, "ventricle": 1, "ignore": 2}


def synth_video(rng: np.random.Generator, frames: int, size: tuple[int, int], amplitude: float = 0.22
                ) -> tuple[np.ndarray, np.ndarray, tuple]:
    """An echocardiography-like 2D+time case: a dark ventricle inside a bright wall that contracts
    and relaxes over one or two cardiac cycles (its radii by +-``amplitude``), in speckle noise.
    Returns the video (T, Y, X) float32, the full label map (T, Y, X) and the frames of
    end-diastole and end-systole."""
    t = np.arange(frames)
    period = frames / rng.uniform(1.0, 2.0)
    phase = rng.uniform(0, 2 * np.pi)
    beat = np.cos(2 * np.pi * t / period + phase)  # 1: end-diastole (largest), -1: end-systole
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    centre = np.array(size) * rng.uniform(0.4, 0.6, 2)
    drift = rng.normal(0, 0.03, (frames, 2)).cumsum(axis=0) * np.array(size)
    radii = np.array(size) * rng.uniform(0.16, 0.24, 2)
    video = np.empty((frames,) + size, np.float32)
    seg = np.zeros((frames,) + size, np.uint8)
    for f in range(frames):
        r = radii * (1 + amplitude * beat[f])
        cy, cx = centre + np.clip(drift[f], -0.1 * np.array(size), 0.1 * np.array(size))
        d = np.sqrt(((yy - cy) / r[0]) ** 2 + ((xx - cx) / r[1]) ** 2)
        seg[f] = d < 1
        tissue = np.where(d < 1, 0.15, np.where(d < 1.45, 0.9, 0.4))
        speckle = rng.rayleigh(0.6, size).astype(np.float32)
        video[f] = ndimage.gaussian_filter(tissue * speckle, 0.8) * 200
    return video, seg, (int(np.argmax(beat)), int(np.argmin(beat)))


def make_video_dataset(out_dir: Path, cases: int = 20, frames: int = 100, size: Sequence[int] = (64, 64),
                       seed: int = 0, test_cases: int | None = None, overwrite: bool = False) -> Path:
    """A sparsely annotated dataset like echocardiography: 2D+time videos (NIfTI, frames first),
    each labelled in two frames only (end-diastole and end-systole: ventricle 1, background 0);
    every other frame is ``ignore`` (2). Test cases are labelled in full, for evaluation."""
    if cases < 2:
        raise ValueError("an example dataset needs at least 2 training cases")
    if frames < 2 or len(size) != 2:
        raise ValueError("a video needs at least 2 frames and a frame size of two numbers (Y X)")
    out = Path(out_dir)
    _clear(out, overwrite)
    check_writable(out)
    size = (int(size[0]), int(size[1]))
    for split, n in (("Tr", cases), ("Ts", max(1, cases // 5) if test_cases is None else test_cases)):
        for i in progress(range(n), desc=f"video {'train' if split == 'Tr' else 'test'} cases", unit="case"):
            case_id = f"echo{'_ts' if split == 'Ts' else ''}_{i:03d}"
            video, seg, labelled = synth_video(np.random.default_rng([seed, i, split == "Ts"]), frames, size)
            if split == "Tr":
                sparse = np.full_like(seg, VIDEO_LABELS["ignore"])
                sparse[list(labelled)] = seg[list(labelled)]
                seg = sparse
            geo = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                           shape=video.shape, file_dims=3)
            write_image(video.round().astype(np.int16), geo, RawPaths(out).image_file(case_id, 0, ".nii.gz", split))
            write_segmentation(seg, geo, RawPaths(out).label_file(case_id, ".nii.gz", split))
    write_dataset_json(out, ["echo"], dict(VIDEO_LABELS), cases, ".nii.gz", out.name,
                       description=f"autounet synthetic echocardiography-like videos ({frames} frames, end-diastole "
                                   f"and end-systole labelled, the rest ignore; seed {seed})")
    return out


def ejection_fraction(seg: np.ndarray, end_diastole: int, end_systole: int) -> float:
    """The area-based ejection fraction (%) of a ventricle label map (T, Y, X): 100 (EDA - ESA) / EDA."""
    eda, esa = float(np.count_nonzero(seg[end_diastole])), float(np.count_nonzero(seg[end_systole]))
    return 100.0 * (eda - esa) / eda


def make_ef_dataset(out_dir: Path, cases: int = 40, frames: int = 32, size: Sequence[int] = (48, 48), seed: int = 0,
                    test_cases: int = 10, overwrite: bool = False) -> Path:
    """A case-level regression dataset of echocardiography-like videos (NIfTI, frames as the first
    axis): the target is each video's ejection fraction (%), from the ventricle's areas at
    end-diastole and end-systole; each case contracts by its own amount (EF about 20-70 %)."""
    from autounet.io.targets import write_targets

    if cases < 2 or frames < 2 or len(size) != 2:
        raise ValueError("an EF dataset needs at least 2 cases, 2 frames and a frame size of two numbers (Y X)")
    out = Path(out_dir)
    _clear(out, overwrite)
    check_writable(out)
    size = (int(size[0]), int(size[1]))
    for split, n in (("Tr", cases), ("Ts", test_cases)):
        targets = {}
        for i in progress(range(n), desc=f"EF {'train' if split == 'Tr' else 'test'} videos", unit="case"):
            case_id = f"echo{'_ts' if split == 'Ts' else ''}_{i:03d}"
            amplitude = float(np.random.default_rng([seed, i, split == "Ts", 1]).uniform(0.06, 0.3))
            video, seg, (ed, es) = synth_video(np.random.default_rng([seed, i, split == "Ts"]), frames, size, amplitude)
            targets[case_id] = [round(ejection_fraction(seg, ed, es), 3)]
            geo = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                           shape=video.shape, file_dims=3)
            write_image(video.round().astype(np.int16), geo, RawPaths(out).image_file(case_id, 0, ".nii.gz", split))
        if n:
            write_targets(RawPaths(out).targets(split), "regression", {"ef": 0}, targets)
    write_dataset_json(out, ["echo"], {"ef": 0}, cases, ".nii.gz", out.name, task="regression",
                       description=f"autounet synthetic echocardiography-like videos, ejection fraction per video "
                                   f"({frames} frames; seed {seed})")
    return out


CASE_TASK_TARGETS = {"classification": None, "multilabel": ("bright", "dark"), "regression": ("radius",)}


def _case_image(rng: np.random.Generator, shape: tuple[int, ...], blobs: list[tuple[float, float]]) -> np.ndarray:
    """Noise over a smooth background with blobs (radius in voxels, contrast) at random places."""
    coords = np.stack(np.meshgrid(*[np.arange(n) + 0.5 for n in shape], indexing="ij"))
    image = 100 + 10 * _smooth_field(rng, shape, [max(1.0, n / 4) for n in shape]) + 6 * rng.normal(size=shape)
    for radius, contrast in blobs:
        center = np.array([rng.uniform(radius, n - radius) if n > 2 * radius else n / 2 for n in shape])
        inside = _blob(coords, center, np.full(len(shape), radius), np.eye(len(shape)),
                       0.15 * _smooth_field(rng, shape, [1.0] * len(shape)))
        image[inside] += contrast
    return image


def _case_target(task: str, rng: np.random.Generator, label: int) -> tuple[list[tuple[float, float]], list[float]]:
    """The blobs of a case and its target: class ``label`` is a blob of radius 1.5 + 1.5 * label;
    multi-label targets are a bright and a dark blob, each present or not; regression's target is
    a blob's radius."""
    if task == "classification":
        return [(1.5 + 1.5 * label + rng.uniform(-0.3, 0.3), 60.0)], [float(label)]
    if task == "multilabel":
        bright, dark = int(rng.random() < 0.5), int(rng.random() < 0.5)
        return [(3.0, 60.0)] * bright + [(3.0, -60.0)] * dark, [float(bright), float(dark)]
    radius = float(rng.uniform(1.5, 5.0))
    return [(radius, 60.0)], [radius]


def make_case_dataset(out_dir: Path, task: str = "classification", dims: int = 2, cases: int = 40,
                      classes: int = 2, shape: Sequence[int] | None = None, class_shares: Sequence[float] | None = None,
                      test_cases: int = 0, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic case-level dataset: images (PNG for 2D, NIfTI for 3D), labelsTr.csv (and
    labelsTs.csv with ``test_cases``), dataset.json with the task.

    classification : class k shows one bright blob of radius about 1.5 + 1.5 k voxels;
        ``class_shares`` sets the classes' proportions (e.g. (0.9, 0.1)), else they are equal.
    multilabel : two targets, a bright and a dark blob, each present in about half the cases.
    regression : one target, the radius of the case's blob (1.5 to 5 voxels).
    """
    from autounet.io.targets import write_targets

    if task not in CASE_TASK_TARGETS or dims not in (2, 3):
        raise ValueError(f"task must be one of {', '.join(CASE_TASK_TARGETS)} and dims 2 or 3, got {task!r}, {dims}")
    if class_shares is not None and (task != "classification" or len(class_shares) != classes):
        raise ValueError(f"class_shares needs one share per class of a classification dataset ({classes}), "
                         f"got {list(class_shares)} for {task}")
    out = Path(out_dir)
    _clear(out, overwrite)
    check_writable(out)
    shape = tuple(shape or ((16, 16) if dims == 2 else (12, 16, 16)))
    shares = np.array(class_shares if class_shares is not None else [1.0] * classes, dtype=float)
    names = [f"class_{k}" for k in range(classes)] if task == "classification" else list(CASE_TASK_TARGETS[task])
    labels = {n: i for i, n in enumerate(names)}
    ending = ".png" if dims == 2 else ".nii.gz"
    for split, n in (("Tr", cases), ("Ts", test_cases)):
        rng = np.random.default_rng([seed, split == "Ts"])
        counts = np.round(shares / shares.sum() * n).astype(int)
        counts[-1] = n - counts[:-1].sum()
        order = rng.permutation(np.repeat(np.arange(classes), counts))
        targets = {}
        for i in range(n):
            case_id = f"case{'_ts' if split == 'Ts' else ''}_{i:03d}"
            blobs, targets[case_id] = _case_target(task, rng, int(order[i]))
            image = _case_image(rng, shape, blobs)
            geo = Geometry(spacing=(FLAT_AXIS_SPACING, 1.0, 1.0) if dims == 2 else (1.0, 1.0, 1.0),
                           origin=(0.0,) * dims, direction=tuple(np.eye(dims).ravel()),
                           shape=((1,) + shape) if dims == 2 else shape, file_dims=dims)
            pixels = np.clip(image, 0, 255).round().astype(np.uint8 if dims == 2 else np.int16)
            write_image(pixels[None] if dims == 2 else pixels, geo, RawPaths(out).image_file(case_id, 0, ending, split))
        if n:
            write_targets(RawPaths(out).targets(split), task, labels, targets)
    write_dataset_json(out, ["image"], labels, cases, ending, out.name, task=task,
                       description=f"autounet synthetic {task} example ({dims}D, seed {seed})")
    return out


def synth_objects(rng: np.random.Generator, shape: tuple[int, ...], radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Discs (2D) or spheres (3D) in pairs that touch: an image (each object its own brightness,
    noise) and the instance map (0 background, objects 1..N, a touching pair split along the
    plane between their centres)."""
    coords = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), -1)
    ids = np.zeros(shape, np.uint16)
    nearest = np.full(shape, np.inf, np.float32)
    n = 0
    for _ in range(max(1, int(np.prod(shape) / (6 * (2 * radius) ** len(shape))))):
        centre = rng.uniform(radius, np.array(shape) - radius)
        direction = rng.normal(size=len(shape))
        partner = centre + 1.8 * radius * direction / np.linalg.norm(direction)  # overlapping: they touch
        earlier = n  # objects of earlier pairs are never overlapped
        for c in (centre, np.clip(partner, radius, np.array(shape) - radius)):
            d = np.linalg.norm(coords - c, axis=-1) / (radius * rng.uniform(0.85, 1.15))
            if np.any((d <= 1) & (ids > 0) & (ids <= earlier)):
                continue
            n += 1
            inside = (d <= 1) & (d < nearest)
            ids[inside], nearest[inside] = n, d[inside]
    brightness = np.concatenate([[20.0], rng.uniform(120, 230, n)])
    image = brightness[ids] + rng.normal(0, 12, shape)
    return np.clip(image, 0, 255).astype(np.float32), ids


def make_instance_dataset(out_dir: Path, dims: int = 2, cases: int = 12, shape: Sequence[int] | None = None,
                          radius: float = 6.0, test_cases: int = 2, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic instance dataset (``"task": "instance"``): touching discs (2D PNG) or
    spheres (3D NIfTI) whose label maps hold one id per object, so that only a method that
    separates touching objects counts them right."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    out = Path(out_dir)
    _clear(out, overwrite)
    check_writable(out)
    size = tuple(shape or ((64, 64) if dims == 2 else (24, 40, 40)))
    ending = ".png" if dims == 2 else ".nii.gz"
    for split, n in (("Tr", cases), ("Ts", test_cases)):
        for i in range(n):
            case_id = f"case{'_ts' if split == 'Ts' else ''}_{i:03d}"
            image, ids = synth_objects(np.random.default_rng([seed, i, split == "Ts"]), size, radius)
            if dims == 2:
                geo = Geometry(spacing=(FLAT_AXIS_SPACING, 1.0, 1.0), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                               shape=(1,) + size, file_dims=2)
                image, ids = image[None].round().astype(np.uint8), ids[None]
            else:
                geo = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                               shape=size, file_dims=3)
                image = image.round().astype(np.int16)
            write_image(image, geo, RawPaths(out).image_file(case_id, 0, ending, split))
            write_segmentation(ids, geo, RawPaths(out).label_file(case_id, ending, split))
    write_dataset_json(out, ["gray" if dims == 2 else "CT"], {"background": 0, "object": 1}, cases, ending, out.name,
                       task="instance", description=f"autounet synthetic touching objects ({dims}D, seed {seed})")
    return out
