"""The detector plug-in API of the benchmark: the contract, a registry, adapters for our analyzers, conformance.

The contract (what ``medaudit bench run`` holds every detector to; :func:`check_detector` tests it)::

    name: str                                  lower_snake, variants after a dot ("suite.retrained")
    version: str
    threshold: float = 0.5                     the shipped operating point: flag when P(fake) >= threshold
    fit(images: list[np.ndarray], labels: np.ndarray) -> self
                                               images float32 (H, W) or (H, W, 3) in [0, 1], any size;
                                               labels (n,) int, 1 = synthetic; a no-op for pre-trained detectors
    predict_proba(images) -> np.ndarray        float (n,) P(synthetic) in [0, 1]; one score per image, independent
                                               of the other images in the call, deterministic
    weights_hash() -> str                      what a result was measured with (hash of the learned state)

Optional: ``pretrained: bool`` (True: ``fit`` does nothing; its training data is fixed, so leave-one-generator-out
numbers of it are *not* unseen-generator numbers and the leaderboard says so), ``availability() -> (bool, why)``
(pydicom-style: a detector whose weights are missing is listed and skipped with the reason), ``fits_groups: bool``
(True: ``fit`` also takes ``groups``, the generator name of each image - None for reals - and ``sources``, its split
unit (patient, generator sample), and calibrates across the generator families seen in training, as ``medaudit
train detector`` does; protocols then pass them), ``predict_with_parts(images) -> (scores, {part: scores})``
(``predict_proba``'s scores and, from the same pass, component scores such as each analyzer of a fused suite),
``fit_figures() -> {name: float}`` (facts of the last fit, e.g. CNN steps).

Where detectors come from:

- the registry here (``@register_detector("name")``, :func:`create_detector`, :func:`list_detectors`): our pixel
  analyzers, the fused suite, the re-implemented baselines (``benchmarks.baselines``);
- installed packages, through the entry-point group ``medaudit.detectors`` (``name = "pkg.module:Factory"``);
- ``--detector module:Class`` on the command line (:func:`load_detector`).

Analyzer adapter policy: an analyzer's ``score = None`` ("does not apply") becomes **0.0**, the same as fusion's
"nothing found" (risk 0). A neutral 0.5 would flag every abstention at the default threshold. Abstentions are
counted in ``abstained_`` so the harness can report coverage.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from forensics.registry import Registry

ENTRY_POINT_GROUP = "medaudit.detectors"
DETECTORS = Registry("detector")
register_detector = DETECTORS.register
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@runtime_checkable
class Detector(Protocol):
    """Structural type of a benchmark detector (see the module docstring)."""

    name: str
    version: str

    def fit(self, images: list[np.ndarray], labels: np.ndarray) -> Detector: ...

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    def weights_hash(self) -> str: ...


def hash_arrays(*arrays: Any) -> str:
    """sha256 (16 hex) of arrays / bytes / strings, in order: the identity of a learned state."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, (bytes, bytearray)):
            h.update(a)
        elif isinstance(a, str):
            h.update(a.encode())
        else:
            arr = np.ascontiguousarray(np.asarray(a))
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


class BaseDetector:
    """Convenience base: scikit-learn conventions (hyper-parameters in ``__init__``, learned state ends in ``_``)."""

    name = "base"
    version = "0"
    threshold = 0.5
    pretrained = False

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def fit(self, images: list[np.ndarray], labels: np.ndarray) -> BaseDetector:
        return self

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> list[Any]:
        """Arrays that make up the learned state (hashed by :meth:`weights_hash`)."""
        return []

    def weights_hash(self) -> str:
        state = self._state()
        return hash_arrays(self.name, self.version, *state) if state else "untrained"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"


def _sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def as_medical_image(pixels: np.ndarray, index: int = 0):
    """An in-memory :class:`forensics.records.MedicalImage` (no file, no metadata) for analyzers and the scanner."""
    from forensics.records import MedicalImage

    x = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    return MedicalImage(pixels=x, path=f"<memory:{index}>", sha256=_sha(x), format="png", bit_depth=8)


# ---------------------------------------------------------------------------------------------- adapters
class AnalyzerDetector(BaseDetector):
    """Any forensics :class:`~forensics.analyzers.Analyzer` as a (pre-trained) detector.

    Args:
        analyzer: registry name or an analyzer instance.
        none_score: the score of "does not apply" (default 0.0; see the module docstring).
        threshold: shipped operating point (our pixel analyzers output calibrated probabilities: 0.5).
        analyzer_kw: passed to ``create_analyzer`` (e.g. ``weights_dir``).
    """

    pretrained = True

    def __init__(self, analyzer: Any = "frequency", none_score: float = 0.0, threshold: float = 0.5,
                 **analyzer_kw: Any):
        self.analyzer = analyzer
        self.none_score = none_score
        self.threshold = threshold
        self.analyzer_kw = analyzer_kw
        self._analyzer: Any = None
        self.abstained_ = 0

    def _get(self):
        if self._analyzer is None:
            if isinstance(self.analyzer, str):
                from forensics.analyzers import create_analyzer

                self._analyzer = create_analyzer(self.analyzer, **self.analyzer_kw)
            else:
                self._analyzer = self.analyzer
        return self._analyzer

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._get().name

    @property
    def version(self) -> str:  # type: ignore[override]
        return str(self._get().version)

    def availability(self) -> tuple[bool, str]:
        return self._get().availability()

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        a = self._get()
        out = np.empty(len(images), dtype=np.float64)
        self.abstained_ = 0
        for i, x in enumerate(images):
            score = a.analyze(as_medical_image(x, i)).score
            if score is None:
                self.abstained_ += 1
                score = self.none_score
            out[i] = score
        return out

    def weights_hash(self) -> str:
        hashes = self._get().model_hashes()
        if not hashes:
            return hash_arrays(self.name, self.version)  # rule-based: the code version is the state
        return hash_arrays(*[f"{k}={v}" for k, v in sorted(hashes.items())])


def risk_or_zero(result: Any) -> float:
    """The fused risk of a scan result as a benchmark score: an ``unscored`` image (no pixel analyzer could assess
    it, e.g. the modality gate saw no known modality) has no risk and counts as not flagged."""
    return 0.0 if result.risk is None else float(result.risk)


def _risks(scanner: Any, images: Sequence[np.ndarray]) -> np.ndarray:
    """float (n,) fused risk of each in-memory image, by ``Scanner.score`` (the scan's own scoring)."""
    return np.array([risk_or_zero(scanner.score(as_medical_image(x, i))) for i, x in enumerate(images)],
                    dtype=np.float64)


class SuiteDetector(BaseDetector):
    """The fused suite: every available analyzer of a :class:`forensics.scanner.Scanner` + fusion, on in-memory images.

    The score is the fused ``risk``; the shipped threshold is the ``high`` level (what ``--fail-on high`` flags).
    Analyzers that need a file (metadata) or an index (reuse) find nothing on in-memory pixels and add nothing.

    Args:
        analyzers: analyzer names (default: every available one).
        weights_dir: pixel analyzers' weights (default: bundled).
    """

    name = "suite"
    version = "1.0"
    pretrained = True

    def __init__(self, analyzers: Sequence[str] | None = None, weights_dir: str | Path | None = None):
        self.analyzers = analyzers
        self.weights_dir = weights_dir
        self._scanner: Any = None

    def _get(self):
        if self._scanner is None:
            from forensics.analyzers import list_analyzers
            from forensics.fusion import FusionConfig
            from forensics.scanner import Scanner, ScanOptions

            weights = None if self.weights_dir is None else str(self.weights_dir)
            names = list(self.analyzers) if self.analyzers is not None else list_analyzers()
            self._scanner = Scanner(ScanOptions(analyzers=names, fusion=FusionConfig.for_weights(weights),
                                                weights_dir=weights))
        return self._scanner

    @property
    def threshold(self) -> float:  # type: ignore[override]
        return float(self._get().options.fusion.high)

    def availability(self) -> tuple[bool, str]:
        s = self._get()
        pixel = [a for a in s.analyzers if a.kind == "pixel"]
        if not pixel:
            why = "; ".join(f"{k}: {v}" for k, v in s.skipped.items()) or "no pixel analyzer"
            return False, f"no pixel analyzer available ({why})"
        return True, ""

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return _risks(self._get(), images)

    def weights_hash(self) -> str:
        s = self._get()
        parts = [f"{a.name}:{a.version}:{k}={v}" for a in s.analyzers for k, v in sorted(a.model_hashes().items())]
        return hash_arrays(*parts, repr(s.options.fusion.to_dict()))


class RetrainedSuiteDetector(BaseDetector):
    """Our pixel detectors retrained on the protocol's training split with ``forensics.training`` (format path,
    native-size round trips of reals as negatives, Platt calibration on an inner validation split by source, fusion
    fit), then scored like the shipped suite (``Scanner.score`` of the retrained pixel analyzers; threshold =
    ``high``).

    Args:
        analyzers: which pixel analyzers to train (``("frequency",)`` is cheap; ``cnn`` costs CPU minutes).
        native_sizes: generators' native sides (px) for the reals' resolution round trips.
        time_budget_s: seconds of fitting and calibration (preparing the format-path variants is not counted: it
            grows with the data, not with the budget).
        cnn_max_steps / cnn_batch_size: CNN steps and batch size.
        real_variants / fake_variants: format-path draws per training image.
        seed: seeds everything.
    """

    version = "1.0"
    fits_groups = True

    def __init__(self, analyzers: Sequence[str] = ("frequency", "cnn"), native_sizes: Sequence[int] = (64,),
                 time_budget_s: float | None = 120.0, cnn_max_steps: int = 400, cnn_batch_size: int = 32,
                 real_variants: int = 2, fake_variants: int = 1, seed: int = 0, high: float = 0.9):
        self.analyzers = tuple(analyzers)
        self.native_sizes = tuple(native_sizes)
        self.time_budget_s = time_budget_s
        self.cnn_max_steps = cnn_max_steps
        self.cnn_batch_size = cnn_batch_size
        self.real_variants = real_variants
        self.fake_variants = fake_variants
        self.seed = seed
        self.high = high
        self._tmp: Any = None
        self.scanner_: Any = None  # the retrained analyzers and their fusion, after fit
        self.report_: dict[str, Any] = {}

    @property
    def name(self) -> str:  # type: ignore[override]
        return "suite.retrained" if "cnn" in self.analyzers else "+".join(self.analyzers) + ".retrained"

    @property
    def threshold(self) -> float:  # type: ignore[override]
        return self.high

    def fit(self, images: list[np.ndarray], labels: np.ndarray, groups: Sequence[str | None] | None = None,
            sources: Sequence[str] | None = None) -> RetrainedSuiteDetector:
        """Train on ``images``; ``groups`` (generator name per image, None for reals) turns on calibration across
        the generator families among the fakes (each held out in turn), so ``high`` holds for an unseen family;
        ``sources`` (split unit per image, e.g. the patient) keeps each unit on one side of the inner validation
        split (default: one unit per image)."""
        from dataclasses import replace

        from benchmarks.train_detector import calibration_families
        from forensics.fusion import FusionConfig
        from forensics.scanner import Scanner, ScanOptions
        from forensics.training import fit_and_save, prepare_variants

        labels = np.asarray(labels).astype(int)

        def side(values: Sequence[Any] | None, lab: int) -> list[Any] | None:
            return None if values is None else [v for v, y in zip(values, labels, strict=True) if y == lab]

        kinds = None if groups is None else [str(g) for g in side(groups, 1) or []]
        families = calibration_families(sorted(set(kinds))) if kinds else None
        train, val = prepare_variants(side(images, 0), side(images, 1), real_groups=side(sources, 0),
                                      fake_groups=side(sources, 1), fake_kinds=kinds, native_sizes=self.native_sizes,
                                      seed=self.seed, real_variants=self.real_variants,
                                      fake_variants=self.fake_variants)
        self._tmp = tempfile.TemporaryDirectory(prefix="medaudit-bench-")
        d = Path(self._tmp.name)
        self.report_ = fit_and_save(train, val, out_dir=d, families=families, seed=self.seed,
                                    analyzers=self.analyzers, time_budget_s=self.time_budget_s,
                                    cnn_max_steps=self.cnn_max_steps, cnn_batch_size=self.cnn_batch_size)
        fusion = replace(FusionConfig.for_weights(d), high=self.high)
        scanner = Scanner(ScanOptions(analyzers=list(self.analyzers), fusion=fusion, weights_dir=str(d)))
        if scanner.skipped:
            raise RuntimeError("; ".join(f"{name}: {why}" for name, why in scanner.skipped.items()))
        self.scanner_ = scanner
        return self

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict_with_parts(images)[0]

    def predict_with_parts(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(fused risk (n,), {analyzer: calibrated score (n,)}) from one scan of each image; an analyzer's "no
        score" counts 0.0, as the adapters count it."""
        if self.scanner_ is None:
            raise RuntimeError(f"{self.name}: call fit first")
        risk: list[float] = []
        parts: dict[str, list[float]] = {a: [] for a in self.analyzers}
        for i, x in enumerate(images):
            result = self.scanner_.score(as_medical_image(x, i))
            risk.append(risk_or_zero(result))
            for f in result.findings:
                parts[f.analyzer].append(0.0 if f.score is None else float(f.score))
        return np.asarray(risk, dtype=np.float64), {a: np.asarray(v, dtype=np.float64) for a, v in parts.items()}

    def fit_figures(self) -> dict[str, float]:
        """``cnn_steps``: optimizer steps the CNN got within the budget (none without a CNN)."""
        cnn = self.report_.get("analyzers", {}).get("cnn")
        return {} if cnn is None else {"cnn_steps": float(cnn["steps"])}

    def weights_hash(self) -> str:
        if self.scanner_ is None:
            return "untrained"
        s = self.scanner_
        parts = [f"{a.name}:{k}={v}" for a in s.analyzers for k, v in sorted(a.model_hashes().items())]
        return hash_arrays(*parts, repr(s.options.fusion.to_dict()))

# ---------------------------------------------------------------------------------------------- registry
@register_detector("frequency")
def _frequency(**kw: Any) -> AnalyzerDetector:
    """The shipped frequency analyzer (bundled weights, pre-trained)."""
    return AnalyzerDetector("frequency", **kw)


@register_detector("cnn")
def _cnn(**kw: Any) -> AnalyzerDetector:
    """The shipped patch-CNN analyzer (bundled weights, pre-trained)."""
    return AnalyzerDetector("cnn", **kw)


@register_detector("suite")
def _suite(**kw: Any) -> SuiteDetector:
    """Every available analyzer fused, as ``medaudit scan`` scores (bundled weights)."""
    return SuiteDetector(**kw)


@register_detector("suite.retrained")
def _suite_retrained(**kw: Any) -> RetrainedSuiteDetector:
    """frequency + cnn retrained on each protocol's training split, fused."""
    return RetrainedSuiteDetector(**kw)


@register_detector("frequency.retrained")
def _frequency_retrained(**kw: Any) -> RetrainedSuiteDetector:
    """The frequency analyzer alone, retrained on each protocol's training split (cheap)."""
    kw.setdefault("analyzers", ("frequency",))
    return RetrainedSuiteDetector(**kw)


_baselines_loaded = False


def _load_baselines() -> None:
    global _baselines_loaded
    if not _baselines_loaded:
        _baselines_loaded = True
        importlib.import_module("benchmarks.baselines")


def list_detectors(pattern: str = "*") -> list[str]:
    """Registered detector names (ours and the baselines), fnmatch ``pattern``."""
    _load_baselines()
    return DETECTORS.names(pattern)


def entry_point_detectors() -> dict[str, Any]:
    """{name: entry point} of installed packages' detectors (group ``medaudit.detectors``)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def create_detector(name: str, **kwargs: Any) -> Any:
    """A detector by registry name, entry-point name, or ``module:Class`` spec."""
    _load_baselines()
    if name in DETECTORS:
        return DETECTORS.create(name, **kwargs)
    eps = entry_point_detectors()
    if name in eps:
        return eps[name].load()(**kwargs)
    if ":" in name:
        return load_detector(name, **kwargs)
    known = ", ".join(list_detectors() + sorted(eps))
    raise KeyError(f"unknown detector {name!r}; known: {known}; or give module:Class")


def load_detector(spec: str, **kwargs: Any) -> Any:
    """Instantiate ``module:Attr`` (a class or a factory) - what ``--detector module:Class`` does."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"expected module:Class, got {spec!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(**kwargs) if callable(obj) else obj


# ---------------------------------------------------------------------------------------------- conformance
class ConformanceError(AssertionError):
    """A detector breaks the contract; the message says which rule."""


def _toy_data(n: int = 16, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Half smooth 'real' images, half noisy 'fake' ones: any sane detector can fit this in a moment."""
    import cv2

    rng = np.random.default_rng(seed)
    ims, labels = [], []
    for i in range(n):
        base = cv2.resize(rng.random((8, 8)).astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC)
        fake = i % 2
        x = base + (rng.normal(0, 0.08, base.shape).astype(np.float32) if fake else 0)
        ims.append(np.clip(x, 0, 1).astype(np.float32))
        labels.append(fake)
    return ims, np.asarray(labels)


def check_detector(det: Any, *, fit_images: list[np.ndarray] | None = None,
                   fit_labels: np.ndarray | None = None) -> None:
    """Raise :class:`ConformanceError` when ``det`` breaks the detector contract (scikit-learn's check_estimator idea).

    Checks: name / version / threshold types; ``fit`` returns the detector; ``predict_proba`` gives a float (n,)
    array in [0, 1] for grayscale and RGB inputs of several sizes, an empty (0,) array for no images, the same scores
    twice, scores that do not depend on the other images in the call, and leaves its inputs unmodified;
    ``weights_hash`` is a non-empty string.
    """

    def fail(msg: str) -> None:
        raise ConformanceError(f"{getattr(det, 'name', type(det).__name__)}: {msg}")

    name = getattr(det, "name", None)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        fail(f"name must be a lower-case string like 'my_detector.v2', got {name!r}")
    if not isinstance(getattr(det, "version", None), str):
        fail("version must be a string")
    thr = getattr(det, "threshold", 0.5)
    if not isinstance(thr, (int, float)) or not 0.0 <= float(thr) <= 1.0:
        fail(f"threshold must be a number in [0, 1], got {thr!r}")
    for meth in ("fit", "predict_proba", "weights_hash"):
        if not callable(getattr(det, meth, None)):
            fail(f"missing method {meth}()")
    ims, labels = (fit_images, fit_labels) if fit_images is not None else _toy_data()
    fitted = det.fit(list(ims), np.asarray(labels))
    if fitted is not det:
        fail("fit() must return self")
    rng = np.random.default_rng(1)
    probe = [
        np.clip(rng.random((64, 64)), 0, 1).astype(np.float32),
        np.clip(rng.random((96, 80)), 0, 1).astype(np.float32),
        np.clip(rng.random((72, 72, 3)), 0, 1).astype(np.float32),
        *[im.copy() for im in ims[:3]],
    ]
    before = [p.copy() for p in probe]
    p1 = det.predict_proba(probe)
    if not isinstance(p1, np.ndarray):
        fail(f"predict_proba must return a numpy array, got {type(p1).__name__}")
    if p1.shape != (len(probe),):
        fail(f"predict_proba must return shape ({len(probe)},), got {p1.shape}")
    if not np.issubdtype(p1.dtype, np.floating):
        fail(f"predict_proba must return floats, got {p1.dtype}")
    if not np.isfinite(p1).all() or (p1 < 0).any() or (p1 > 1).any():
        fail(f"predict_proba must return finite values in [0, 1], got {p1}")
    if any(not np.array_equal(a, b) for a, b in zip(probe, before, strict=True)):
        fail("predict_proba modified its input images")
    p2 = det.predict_proba(probe)
    if not np.allclose(p1, p2, atol=1e-6):
        fail("predict_proba is not deterministic")
    p3 = det.predict_proba(probe[::-1])
    p4 = np.concatenate([det.predict_proba([x]) for x in probe[:2]])
    if not np.allclose(p1, p3[::-1], atol=1e-5) or not np.allclose(p1[:2], p4, atol=1e-5):
        fail("a score depends on the other images in the call (or on their order)")
    empty = det.predict_proba([])
    if not isinstance(empty, np.ndarray) or empty.shape != (0,):
        fail(f"predict_proba([]) must return an empty (0,) array, got {getattr(empty, 'shape', empty)!r}")
    h = det.weights_hash()
    if not isinstance(h, str) or not h:
        fail("weights_hash() must return a non-empty string")


def availability(det: Any) -> tuple[bool, str]:
    fn: Callable[[], tuple[bool, str]] | None = getattr(det, "availability", None)
    return fn() if fn is not None else (True, "")
