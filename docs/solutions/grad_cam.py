"""Worked solution: Grad-CAM's weighted map (chapter 4).

python -m pathmnist.exercises check docs/solutions/grad_cam.py
"""

import torch

REPLACES = {"pathmnist.evaluation.gradcam._weighted_map": "weighted_map"}
ORACLE_TESTS = (
    "test_raw_map_equals_captum_layer_gradcam",
    "test_map_equals_pytorch_grad_cam",
    "test_map_peaks_in_the_region_the_logit_depends_on",
)


def weighted_map(acts, grads):
    """acts, grads (B, K, h, w) -> the Grad-CAM map ReLU(sum_k alpha_k A_k), (B, h, w)."""
    alpha = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1): one weight per channel
    return torch.relu((alpha * acts).sum(dim=1))  # (B, h, w)
