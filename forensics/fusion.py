"""Fusion: findings -> one calibrated ``risk`` in [0, 1] and a level.

Three kinds of evidence, used differently (docs/ARCHITECTURE.md; the record fields in docs/FORMATS.md):
- decisive findings (our watermark or provenance label, a generator signature, DICOM Conversion Type SYN) set the
  risk to their score, near 1;
- pixel analyzers give calibrated probabilities; they are combined in logit space - a weighted mean, then a gain and
  a bias - fitted on held-out validation data (stored as JSON beside the weights; equal weights until a fit exists);
- metadata anomalies, reuse matches and local tampering traces raise the risk as bounded evidence: each adds its
  weight's log-odds, and together they can add at most ``rules_cap`` of probability mass, so no amount of header
  oddity alone reaches ``high``;
- except a *supported* local finding (:func:`local_supported`): a localized edit whose localizer was measured, on
  held-out files and held-out tamper methods, to keep false alarms at or below ``local_high_max_fpr`` while still
  catching ``local_high_min_tpr`` of every held-out method at its operating threshold, and whose score is at or
  above that threshold. Its calibrated score then raises the risk like a pixel score (to ``high`` when it is that
  high). The figures come with the finding (``data["support"]``, from the localizer's ``localizer.json``), not
  from code here.

Absence of evidence gives risk 0 ("nothing found"), never a claim of authenticity: reports say so. When no pixel
analyzer scored the image and nothing decisive was found, the image was not assessed: ``explain`` says so
(``scored=False``) and the scanner gives it the level ``unscored`` unless the bounded evidence alone reaches medium.

``explain`` also says *why*: the fused risk as log-odds, ``prior + sum(contributions) == logit``, one contribution
per finding (docs/FORMATS.md, "Explained scores").
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.records import Finding

_EPS = 1e-4
# Kinds of evidence that can raise the risk only up to rules_cap: header anomalies, look-alike matches in the reuse
# index and local tampering traces (copied grain) - each has a few percent of false alarms on real scans, so alone
# it asks for review (medium), never high. A decisive finding of any kind still settles the question.
_BOUNDED = ("rules", "reuse", "mark", "local")
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass
class FusionConfig:
    """Thresholds and weights. ``medium``/``high`` are lower bounds of the levels; written into every report."""

    medium: float = 0.5
    high: float = 0.9
    rules_cap: float = 0.6
    pixel_weights: dict[str, float] = field(default_factory=dict)
    pixel_gain: float = 1.0
    pixel_bias: float = 0.0
    # what a local finding's held-out calibration must show before it may raise the risk past rules_cap
    local_high_max_fpr: float = 0.01
    local_high_min_tpr: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 < self.medium < self.high <= 1.0:
            raise ValueError(f"thresholds must satisfy 0 < medium < high <= 1, got {self.medium}, {self.high}")

    @classmethod
    def from_json(cls, path: str | Path) -> FusionConfig:
        """Fields of a fusion JSON (other keys, e.g. the validation figures stored beside them, are ignored)."""
        data = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def for_weights(cls, weights_dir: str | Path | None = None) -> FusionConfig:
        """The config fitted with the pixel detectors in ``weights_dir``: the ``fusion.json`` beside them; else (no
        folder, or none there) the bundled one; else the defaults (equal weights)."""
        for folder in ([Path(weights_dir)] if weights_dir is not None else []) + [BUNDLED_WEIGHTS]:
            if (folder / "fusion.json").is_file():
                return cls.from_json(folder / "fusion.json")
        return cls()

    def thresholds(self) -> dict[str, float]:
        return {"medium": self.medium, "high": self.high}

    def to_dict(self) -> dict:
        return asdict(self)


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


@dataclass
class Fusion:
    """How the findings became the risk.

    Attributes:
        risk: the fused risk in [0, 1] (what ``fuse`` returns).
        logit: the risk as log-odds; ``prior + sum(contributions) == logit``.
        prior: where the log-odds start before any finding: the pixel bias when a pixel analyzer scored the image,
            else ``logit(1e-4)`` ("nothing found").
        contributions: log-odds each finding added, in the order of the findings (0 for those that did not count).
        assessed_by: the pixel analyzers that scored the image.
        decisive: a decisive finding set the risk.
        local_supported: the analyzers whose local finding was supported (:func:`local_supported`) and counted
            uncapped.
    """

    risk: float
    logit: float
    prior: float
    contributions: list[float]
    assessed_by: list[str]
    decisive: bool
    local_supported: list[str] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        """A pixel analyzer assessed the image, or decisive evidence settled it."""
        return bool(self.assessed_by) or self.decisive


def fuse(findings: list[Finding], config: FusionConfig) -> float:
    """Risk in [0, 1] from the findings, each used as its ``kind`` says (rules|mark|pixel|realness|reuse|local)."""
    return explain(findings, config).risk


def explain(findings: list[Finding], config: FusionConfig) -> Fusion:
    """The fused risk and its decomposition into log-odds contributions, one per finding.

    Pixel findings add ``gain * w_i * logit(p_i) / sum(w)`` to the pixel bias; a ``realness`` finding (a model of
    real images only) raises that pixel part to its score when it is higher, and adds the difference. The bounded
    evidence (a capped noisy-OR) moves the log-odds by ``logit(risk) - logit(pixel part)``; that step is shared among
    the bounded findings in proportion to ``-log(1 - score)``, each one's share of the noisy-OR. A decisive finding
    sets the risk: it takes the whole step from the prior, the others add 0.

    A supported local finding (:func:`local_supported`) leaves the bounded group: like a ``realness`` finding it
    raises the pixel part to its own calibrated score when that is higher, and adds the difference in log-odds (0
    otherwise), so it can reach ``high``; an unsupported one stays bounded (``medium`` at most).
    """
    contributions = [0.0] * len(findings)
    pixel = [(i, f) for i, f in enumerate(findings) if f.kind == "pixel" and f.score is not None]
    assessed_by = [f.analyzer for _, f in pixel]
    prior = config.pixel_bias if pixel else _logit(0.0)

    decisive = [(f.score, i) for i, f in enumerate(findings) if f.decisive and f.score is not None]
    if decisive:
        risk, i = max(decisive)
        logit = _logit(risk)
        contributions[i] = logit - prior
        return Fusion(float(risk), logit, prior, contributions, assessed_by, True)

    base_logit = prior
    if pixel:
        weights = [config.pixel_weights.get(f.analyzer, 1.0) for _, f in pixel]
        for w, (i, f) in zip(weights, pixel, strict=True):
            contributions[i] = config.pixel_gain * w * _logit(f.score) / sum(weights)
        base_logit = prior + sum(contributions[i] for i, _ in pixel)
    base = float(pixel_probability([(f.analyzer, _logit(f.score)) for _, f in pixel], config)) if pixel else 0.0

    # Evidence fitted on real images only (kind "realness") can only raise the pixel part, to its own score: it
    # knows what real acquisitions look like, not what fakes do, so "typical" is no evidence either way (it abstains)
    # and averaging it with the learned detectors would let a typical-looking verdict pull a strong one down.
    real_only = [(i, f) for i, f in enumerate(findings) if f.kind == "realness" and f.score is not None]
    assessed_by += [f.analyzer for _, f in real_only]
    raised = False
    if real_only:
        i, f = max(real_only, key=lambda t: t[1].score)
        if f.score > base:
            contributions[i] = _logit(f.score) - base_logit
            base, base_logit, raised = float(f.score), _logit(f.score), True

    # A local finding whose held-out calibration supports it is calibrated evidence, not a hint: it raises the pixel
    # part to its score as realness does, and leaves the capped group.
    supported = [(i, f) for i, f in enumerate(findings) if local_supported(f, config)]
    if supported:
        i, f = max(supported, key=lambda t: t[1].score)
        if f.score > base:
            contributions[i] = _logit(f.score) - base_logit
            base, base_logit, raised = float(f.score), _logit(f.score), True
    skip = {i for i, _ in supported}

    # Bounded metadata/reuse evidence: noisy-OR of the other scores, capped, then added to what pixels leave.
    other = [(i, f.score) for i, f in enumerate(findings)
             if f.kind in _BOUNDED and f.score is not None and i not in skip]
    bounded = min(config.rules_cap, 1.0 - math.prod(1.0 - s for _, s in other)) if other else 0.0
    risk = base + (1.0 - base) * bounded
    # without a pixel score the base is 0, not sigmoid(prior): the risk is the bounded evidence alone
    logit = base_logit + _bounded_step(base_logit, bounded) if pixel or raised else _logit(risk)
    hazards = [(i, -math.log1p(-min(s, 1 - 1e-12))) for i, s in other]
    total = sum(h for _, h in hazards)
    for i, h in hazards:
        contributions[i] = (logit - base_logit) * h / total if total > 0 else 0.0
    return Fusion(float(risk), logit, prior, contributions, assessed_by, False, [f.analyzer for _, f in supported])


def local_supported(finding: Finding, config: FusionConfig) -> bool:
    """True for a local finding that may count beyond ``rules_cap``: it marks at least one region, its score is at or
    above its localizer's operating threshold, and that localizer's figures on held-out files and held-out tamper
    methods (``data["support"]``: ``threshold``, ``heldout_fpr``, ``heldout_methods_min_tpr``) meet the config's
    ``local_high_max_fpr`` and ``local_high_min_tpr``. Anything missing: False (bounded, as before)."""
    if finding.kind != "local" or finding.score is None or not isinstance(finding.data, dict):
        return False
    support = finding.data.get("support") or {}
    try:
        threshold = float(support["threshold"])
        fpr, tpr = float(support["heldout_fpr"]), float(support["heldout_methods_min_tpr"])
    except (KeyError, TypeError, ValueError):
        return False
    return (bool(finding.data.get("regions")) and finding.score >= threshold
            and fpr <= config.local_high_max_fpr and tpr >= config.local_high_min_tpr)


def _bounded_step(base_logit: float, bounded: float) -> float:
    """logit(1 - (1 - sigmoid(b)) (1 - bounded)) - b, computed without overflow for large |b|."""
    if bounded <= 0.0:
        return 0.0
    log_u = -_softplus(base_logit) + math.log1p(-bounded)  # log((1 - base) (1 - bounded)) = log(1 - risk)
    return math.log(-math.expm1(log_u)) - log_u - base_logit


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def pixel_probability(logits: list[tuple[str, Any]], config: FusionConfig) -> Any:
    """``sigmoid(bias + gain * weighted mean)`` of (analyzer, calibrated logit) pairs; the logits may be floats or
    numpy arrays (training evaluates whole validation sets with it). An analyzer without a weight counts 1."""
    weights = [config.pixel_weights.get(name, 1.0) for name, _ in logits]
    z = sum(w * v for w, (_, v) in zip(weights, logits, strict=True)) / sum(weights)
    return 1.0 / (1.0 + np.exp(-(config.pixel_bias + config.pixel_gain * z)))


def level_of(risk: float, config: FusionConfig) -> str:
    if risk >= config.high:
        return "high"
    if risk >= config.medium:
        return "medium"
    return "low"
