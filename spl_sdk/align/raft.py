"""Optional residual flow from torchvision's RAFT (``--align raft``): weights through torch hub's download path."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

from spl_sdk.errors import ModelNotFoundError
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

if TYPE_CHECKING:
    import numpy as np

RAFT_SIDE = 512  # RAFT runs on the estimation grid shrunk to this long side; its flow is smoothed anyway


def _weights() -> Any:
    """The pretrained weights enum of torchvision's small RAFT (a 4 MB download on first use)."""
    from torchvision.models.optical_flow import Raft_Small_Weights

    return Raft_Small_Weights.DEFAULT


def load_raft(device: torch.device) -> Any:
    """torchvision's small RAFT in eval mode; missing weights offline are one clear error."""
    from torchvision.models.optical_flow import raft_small

    weights = _weights()
    try:  # torch hub announces its download on stderr: the CLI's output stays one line either way
        with contextlib.redirect_stderr(io.StringIO()):
            model = raft_small(weights=weights, progress=False)
    except (OSError, RuntimeError) as exc:  # urllib's URLError is an OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"RAFT's weights ({weights.url if weights is not None else 'raft_small'}) are not in the torch hub "
            f"cache ({torch.hub.get_dir()}) and could not be downloaded ({reason}); connect once to fetch "
            f"them, or use --align flow (OpenCV's DIS optical flow, no weights).") from None
    return model.eval().to(device)


def raft_flow(template: np.ndarray, moving: np.ndarray, device: torch.device) -> np.ndarray:
    """(h, w, 2) raw displacement d with moving(x + d(x)) ~ template(x), from 8-bit normalized luminances."""
    import numpy as np

    h, w = template.shape
    scale = min(1.0, RAFT_SIDE / max(h, w))
    # RAFT takes sizes that are multiples of 8, RGB in [-1, 1]: the luminance three times
    size = (max(8, round(h * scale / 8) * 8), max(8, round(w * scale / 8) * 8))

    def prepare(image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(image.astype(np.float32) / 127.5 - 1)[None, None].to(device)
        return F.interpolate(t, size=size, mode="area").expand(-1, 3, -1, -1).contiguous()

    model = load_raft(device)
    with torch.no_grad():
        flow = model(prepare(template), prepare(moving), num_flow_updates=12)[-1]
    flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)[0]
    flow[0] *= w / size[1]
    flow[1] *= h / size[0]
    return flow.permute(1, 2, 0).cpu().numpy().astype(np.float32)
