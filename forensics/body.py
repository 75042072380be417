"""Where the patient is in a radiograph or CT slice: the region a lesion can be added to or removed from."""

from __future__ import annotations

import cv2
import numpy as np

from forensics.formatpath import to_gray


def body_mask(gray: np.ndarray) -> np.ndarray:
    """bool (H, W): the patient (Otsu foreground, largest component, holes such as the lungs filled).

    Args:
        gray: float (H, W) or (H, W, 3) display values in [0, 1].
    """
    g = to_gray(gray)
    u8 = (cv2.GaussianBlur(g, (0, 0), 2.0) * 255).astype(np.uint8)
    _, fg = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.ones(g.shape, bool)
    big = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    # fill holes: flood the background from the border, everything not reached is body
    pad = np.pad(big, 1)
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((pad.shape[0] + 2, pad.shape[1] + 2), np.uint8), (0, 0), 2)
    return (flood != 2)[1:-1, 1:-1]
