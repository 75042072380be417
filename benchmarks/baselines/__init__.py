"""Baseline detectors re-implemented from their papers, registered in ``benchmarks.detectors`` on import.

One module per method; each docstring is its card (paper, what is re-implemented, how it deviates). See README.md.

=================  ====================================================================================
``durall``         Durall et al., CVPR 2020: 1-D azimuthal power spectrum + logistic regression
``frank_dct``      Frank et al., ICML 2020: log |2-D DCT| + a linear model
``dzanic``         Dzanic et al., NeurIPS 2020: power-law decay fit of the high-frequency spectrum + KNN
``npr``            Tan et al., CVPR 2024 (NPR-style): x - up(down(x)) into a tiny ResNet trunk
``cnndetection``   Wang et al., CVPR 2020 (CNNDetection-style): timm resnet50 (no pretrained weights),
                   Blur+JPEG augmentation, trained briefly on CPU at a small input size
=================  ====================================================================================
"""

from __future__ import annotations

from benchmarks.baselines import cnndetection, durall, dzanic, frank_dct, npr  # noqa: F401  (they register)
