"""The ``watermark`` analyzer: finds medaudit's own invisible provenance watermark in the pixels.

Works after metadata is stripped, JPEG (quality >= 70), resizing (>= 0.5x) and 16 -> 8 bit export. Finding the
mark is decisive (the image came out of a medaudit generator or tamper tool); not finding it says nothing about
authenticity, so the finding then has no score and only an informational, weight-0 evidence with the z.
"""

from __future__ import annotations

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import Analyzer
from forensics.records import Evidence, Finding, MedicalImage
from forensics.watermark import detect


@register_analyzer("watermark")
class WatermarkAnalyzer(Analyzer):
    """Decodes the provenance watermark (see ``forensics.watermark``); about 0.2-1 ms per image."""

    name = "watermark"
    version = "1"
    kind = "mark"

    def analyze(self, image: MedicalImage) -> Finding:
        res = detect(image.pixels)
        if res.present:
            message = f"medaudit provenance watermark found (z={res.z:.1f}, threshold {res.threshold:.1f})"
            return self.finding(max(0.99, res.score), [Evidence("watermark.medaudit", message, 1.0)], decisive=True)
        message = f"no medaudit watermark (z={res.z:.1f} < {res.threshold:.1f}); says nothing about authenticity"
        return self.finding(None, [Evidence("watermark.absent", message, 0.0)])
