"""The ``watermark`` analyzer: finds medaudit's own invisible provenance watermark in the pixels.

Works after metadata is stripped, JPEG (quality >= 70), resizing (>= 0.5x) and 16 -> 8 bit export. Finding the
mark is decisive (the image came out of a medaudit generator or tamper tool); not finding it says nothing about
authenticity, so the finding then has no score and only an informational, weight-0 evidence with the z.

With a secret key (``ScanOptions.watermark_key``, ``--watermark-key``) the analyzer also looks for that key's mark
(``watermark.keyed``): only the key holder's pipeline can have put it there (see docs/PROVENANCE.md).
"""

from __future__ import annotations

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import Analyzer
from forensics.records import Evidence, Finding, MedicalImage
from forensics.watermark import WatermarkKey, detect


@register_analyzer("watermark")
class WatermarkAnalyzer(Analyzer):
    """Decodes the provenance watermark (see ``forensics.watermark``); about 0.2-1 ms per image."""

    name = "watermark"
    version = "1"
    kind = "mark"
    settings = ("watermark_key",)

    def __init__(self, watermark_key: WatermarkKey | None = None):
        self.watermark_key = watermark_key

    def analyze(self, image: MedicalImage) -> Finding:
        if self.watermark_key is not None:
            keyed = detect(image.pixels, key=self.watermark_key)
            if keyed.present:
                message = (f"watermark of the secret key {self.watermark_key.key_id} found (z={keyed.z:.1f}, "
                           f"threshold {keyed.threshold:.1f}): made by a holder of that key")
                return self.finding(max(0.99, keyed.score), [Evidence("watermark.keyed", message, 1.0)], decisive=True)
        res = detect(image.pixels)
        if res.present:
            message = f"medaudit provenance watermark found (z={res.z:.1f}, threshold {res.threshold:.1f})"
            return self.finding(max(0.99, res.score), [Evidence("watermark.medaudit", message, 1.0)], decisive=True)
        message = f"no medaudit watermark (z={res.z:.1f} < {res.threshold:.1f}); says nothing about authenticity"
        return self.finding(None, [Evidence("watermark.absent", message, 0.0)])
