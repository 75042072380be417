"""Making a study: pick files from folders, convert them for display, score them with the detector suite, store.

The picking is seeded; each file is read once by ``forensics.io.load`` (so every format medaudit reads works) and
scored by ``Scanner.score`` on that same image: the detector sees the file as it came (header included), the
reader sees only its pixels. A file that cannot be read is reported and the next one of its class is taken.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.reader.display import DEFAULT_SIZE, display_pixels, overlay_png, to_uint8
from benchmarks.reader.store import TRUTHS, Study

MAX_REASONS = 5
DEMO_VERSION = 1


@dataclass
class BuildReport:
    """What went into a study: images per class, and the files left out with why."""

    study: str
    images: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"study": self.study, "images": self.images, "skipped": self.skipped}


def candidates(folder: str | Path) -> list[str]:
    """Files under ``folder`` (walked as `medaudit scan` walks), sorted so a seed picks the same ones again."""
    from forensics.inputs import iter_inputs

    return sorted(path for path, error in iter_inputs([folder]) if error is None)


def quotas(n: int, available: dict[str, int]) -> dict[str, int]:
    """Split ``n`` images across the classes as evenly as the files allow (real first for the remainder)."""
    want = dict.fromkeys(available, 0)
    left = n
    while left > 0:
        open_classes = [c for c in available if want[c] < available[c]]
        if not open_classes:
            break
        for c in open_classes:
            if left == 0:
                break
            want[c] += 1
            left -= 1
    return want


def build_study(path: str | Path, folders: dict[str, str | Path], n: int, *, seed: int = 0, name: str | None = None,
                size: int = DEFAULT_SIZE, analyzers: list[str] | None = None,
                regions: dict[str, list[float]] | None = None, progress: bool = True) -> BuildReport:
    """Create the study file ``path`` from ``folders`` ({truth: folder}) with ``n`` images in all.

    Args:
        regions: for tampered files whose changed area is known, {file path: [x0, y0, x1, y1] in [0, 1]}.
    """
    from forensics.scanner import Scanner, ScanOptions

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; a study is made once (pick another name)")
    unknown = set(folders) - set(TRUTHS)
    if unknown:
        raise ValueError(f"unknown truth {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    pools = {truth: candidates(folder) for truth, folder in folders.items()}
    for truth, pool in pools.items():
        if not pool:
            raise ValueError(f"no files under the {truth} folder {folders[truth]}")
        rng.shuffle(pool)
    want = quotas(n, {t: len(p) for t, p in pools.items()})
    scanner = Scanner(ScanOptions(analyzers=analyzers))
    report = BuildReport(str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with Study(tmp, create=True) as study:
            study.set_meta("name", name or path.stem)
            study.set_meta("seed", seed)
            study.set_meta("display_size", size)
            study.set_meta("analyzers", [a.name for a in scanner.analyzers])
            study.set_meta("thresholds", {"medium": scanner.options.fusion.medium, "high": scanner.options.fusion.high})
            for truth, pool in pools.items():
                added = 0
                for file in pool:
                    if added == want[truth]:
                        break
                    _say(progress, f"{truth} {added + 1}/{want[truth]}")
                    if _add_file(study, scanner, file, truth, size, (regions or {}).get(file), report):
                        added += 1
                report.images[truth] = added
        tmp.replace(path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return report


def _add_file(study: Study, scanner, file: str, truth: str, size: int, region: list[float] | None,
              report: BuildReport) -> bool:
    from forensics.errors import InputError
    from forensics.io import load

    try:
        image = load(file, max_pixels=scanner.options.max_pixels, max_bytes=scanner.options.max_bytes)
        pixels, window, invert = display_pixels(image, size)
    except InputError as exc:
        report.skipped.append({"path": file, "code": exc.code, "message": exc.message})
        return False
    try:
        result = scanner.score(image)
        risk, level = result.risk, result.level
        findings = result.findings
    except Exception as exc:  # the detector failing is a fact about the detector: the image still gets read
        risk, level, findings = None, None, []
        report.skipped.append({"path": file, "code": "detector_error", "message": f"{type(exc).__name__} (kept)"})
    study.add_image(truth=truth, sha256=image.sha256, modality=image.modality, pixels=pixels, window=window,
                    invert=invert, risk=risk, level=level, detector=_verdict(findings), region=region,
                    overlay=_overlay(findings, to_uint8(pixels, window, invert)))
    return True


def _verdict(findings: list) -> dict:
    """Scores per analyzer and the strongest reasons, as teaching mode shows them."""
    evidence = sorted((e for f in findings for e in f.evidence if e.weight > 0), key=lambda e: -e.weight)
    return {"findings": [{"analyzer": f.analyzer, "score": None if f.score is None else round(float(f.score), 4)}
                         for f in findings],
            "reasons": [e.message for e in evidence[:MAX_REASONS]]}


def _overlay(findings: list, base_u8: np.ndarray) -> bytes | None:
    with_map = [f for f in findings if f.heatmap is not None and f.score is not None]
    if not with_map:
        return None
    best = max(with_map, key=lambda f: f.score)
    return overlay_png(best.heatmap, base_u8)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"reader: {text}", file=sys.stderr, flush=True)


# --- the bundled demo ---------------------------------------------------------------------------------------------


def demo_cache_dir() -> Path:
    """Where the demo study lives: $MEDAUDIT_CACHE, else $XDG_CACHE_HOME/medaudit, else ~/.cache/medaudit."""
    root = os.environ.get("MEDAUDIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "medaudit")
    return Path(root) / "reader-demo"


def demo_study(progress: bool = True, make_folders: Callable[[Path], tuple[dict, dict]] | None = None) -> Path:
    """The demo study, built on first use from shipped files only (nothing is downloaded).

    Real: the scanner DICOMs inside pydicom and nibabel; synthetic: one sample of every bundled generator;
    tampered: a lesion injected (unlabelled) into pydicom's CT, its place recorded for click scoring.
    Falls back to a temporary folder when the cache cannot be written.
    """
    for folder in (demo_cache_dir(), Path(tempfile.gettempdir()) / f"medaudit-reader-demo-{os.getuid()}"):
        study_path = folder / f"demo-v{DEMO_VERSION}.sqlite"
        if study_path.is_file():
            return study_path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp, _one_torch_thread():
                folders, regions = (make_folders or demo_folders)(Path(tmp))
                n = sum(len(candidates(f)) for f in folders.values())
                build_study(study_path, folders, n, seed=0, name="medaudit demo", regions=regions, progress=progress)
            return study_path
        except PermissionError:
            continue
    raise PermissionError("no writable cache folder for the demo study")


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Tiny models (one sample per generator) gain nothing from threads; on a busy machine extra ones only spin
    (measured: minutes instead of seconds for the demo's diffusion sample)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def demo_folders(root: Path) -> tuple[dict[str, Path], dict[str, list[float]]]:
    from benchmarks.demo_set import _real_files
    from forensics.io import load
    from generators import generate, list_bundled
    from generators.tamper import tamper_file

    real, synthetic, tampered = root / "real", root / "synthetic", root / "tampered"
    for folder in (real, synthetic, tampered):
        folder.mkdir()
    reals = _real_files(real)
    for model in list_bundled():
        generate(model["name"], 1, str(synthetic), fmt="png", seed=0, progress=False)
    source = next(p for p in reals if p.name == "pydicom_ct.dcm")
    h, w = load(str(source)).pixels.shape[:2]
    out = tampered / "ct_lesion.png"
    info = tamper_file(source, out, "inject", at=(w * 0.62, h * 0.45), stamp=False, seed=0, mask_path=None)
    x0, y0, x1, y1 = info["bbox"]
    return ({"real": real, "synthetic": synthetic, "tampered": tampered},
            {str(out): [x0 / w, y0 / h, x1 / w, y1 / h]})
