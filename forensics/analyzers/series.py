"""The ``series`` analyzer: a DICOM slice that departs from its neighbours in the same series (``forensics.series``).

The comparison needs the whole series, so it runs once per scan, before the files are scanned (``scan_items`` fills
``ScanOptions.series``); this analyzer only reports each slice's verdict. A file scanned alone, a non-DICOM image or
a slice of a series with fewer than three slices has no verdict: the analyzer abstains (score None).
"""

from __future__ import annotations

import numpy as np

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import Analyzer
from forensics.records import Evidence, Finding, MedicalImage
from forensics.series import Verdict, load_calibration


@register_analyzer("series")
class SeriesAnalyzer(Analyzer):
    name = "series"
    version = "1"
    kind = "local"  # bounded evidence: real series have rare outlying slices too
    # opt-in: on real MRI series it flagged 1.4 % of untouched slices (15 % of 5.5 mm ones) while catching at most
    # 12 % of tampered slices (docs/BENCHMARKS.md, "DICOM series consistency"): a net cost as a default
    default = False
    settings = ("series",)

    def __init__(self, series: dict[str, Verdict] | None = None):
        self.series = series or {}
        self._flag_z = load_calibration()["flag_z"]

    def model_files(self):
        from forensics.series import CALIBRATION

        return [CALIBRATION] if CALIBRATION.is_file() else []

    def analyze(self, image: MedicalImage) -> Finding:
        v = self.series.get(image.path)
        if v is None:
            return self.finding(None)
        where = f"slice {v.index + 1} of {v.n_slices} in its series"
        data = {"index": v.index, "n_slices": v.n_slices, "neighbours": v.neighbours, "statistic": v.statistic,
                "z": v.z, "flag_z": self._flag_z, "region": {"box": v.box, "area_px": v.area_px}}
        if not v.flagged:
            return self.finding(v.score, [Evidence(
                "series.consistent", f"{where} agrees with its neighbours (largest departure z = {v.z:.1f}, "
                                     f"reported from {self._flag_z:.1f})", 0.0)], data=data)
        x0, y0, x1, y1 = v.box
        message = (f"{where}: the {v.statistic} of a {v.area_px} px region at ({x0}, {y0})-({x1}, {y1}) departs from "
                   f"the adjacent slices (z = {v.z:.1f}; real series stay below {self._flag_z:.1f} in about 99 % of "
                   "slices); a local edit or a slice from elsewhere would do this")
        return self.finding(v.score, [Evidence("series.inconsistent_slice", message, v.score)], data=data,
                            heatmap=_heatmap(v, image.pixels.shape[:2], self._flag_z))


def _heatmap(v: Verdict, shape: tuple[int, int], flag_z: float) -> np.ndarray | None:
    """The verdict's z grid on [0, 1] (1 at twice the reporting level), padded to whole cells of the image."""
    if not v.grid:
        return None
    grid = np.clip(np.asarray(v.grid, dtype=np.float32) / (2 * flag_z), 0, 1)
    cell = v.cell
    gh, gw = -(-shape[0] // cell), -(-shape[1] // cell)
    out = np.zeros((gh, gw), np.float32)
    out[: grid.shape[0], : grid.shape[1]] = grid[:gh, :gw]
    return out
