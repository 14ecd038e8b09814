"""PIE-Bench's editing metrics (``spl eval``): structure distance, background fidelity, CLIP score.

Definitions follow the PIE-Bench evaluation (Ju et al., "Direct Inversion", 2023);
docs/batch.md lists them. torch, torchmetrics, lpips, open_clip, transformers and
matplotlib are imported inside the functions that use them.
"""
