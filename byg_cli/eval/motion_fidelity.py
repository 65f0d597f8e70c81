"""Motion fidelity (Yatim et al., CVPR 2024): how well the edited video's point trajectories follow the
source's.

Tracklets are (N, T, 2) pixel positions. For tracklets a and b, corr(a, b) is the mean over time steps of the
cosine between their displacement vectors d_t = p_{t+1} - p_t (a step with no motion contributes 0 rather than
NaN). Two formulas:

- "symmetric" (default): the Chamfer-style score of the paper's definition as we read it, the average of
  mean_i max_j corr(edit_i, src_j) and mean_j max_i corr(edit_i, src_j). Both directions matter: an edit that
  freezes part of the scene leaves source tracklets without a partner, which the one-directional score never
  sees.
- "reference-code": the released script's score, mean over edited tracklets of the max over source tracklets
  of (corr - I), with its identity subtraction (it cannot match a grid point with the same point of the other
  video). Kept to compare with numbers computed by that script.

Tracklets come from a tracker: files of precomputed tracks (for example CoTracker's, which is not on PyPI)
or, built in, a grid of points carried along RAFT optical flow (`tracks_from_flows`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FORMULAS = ("symmetric", "reference-code")


def unit_displacements(tracks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, T, 2) positions -> (N, T-1, 2) unit displacement vectors (zero where a point does not move)."""
    d = tracks[:, 1:].double() - tracks[:, :-1].double()
    norm = d.norm(dim=-1, keepdim=True)
    return torch.where(norm > eps, d / norm.clamp_min(eps), torch.zeros_like(d))


def tracklet_correlation(edit: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """(N_edit, N_source) mean-over-time cosine of displacements (one matrix product, not an N*M*T tensor)."""
    if edit.shape[1] != source.shape[1]:
        raise ValueError(f"tracks span different numbers of frames: {edit.shape[1]} vs {source.shape[1]}")
    a, b = unit_displacements(edit), unit_displacements(source)
    steps = a.shape[1]
    return (a.reshape(len(a), -1) @ b.reshape(len(b), -1).T) / steps


def motion_fidelity(source_tracks: torch.Tensor, edit_tracks: torch.Tensor, formula: str = "symmetric") -> float:
    corr = tracklet_correlation(edit_tracks, source_tracks)
    if formula == "symmetric":
        return float(0.5 * (corr.max(dim=1).values.mean() + corr.max(dim=0).values.mean()))
    if formula == "reference-code":
        eye = torch.eye(corr.shape[0], corr.shape[1], dtype=corr.dtype)
        return float((corr - eye).max(dim=1).values.mean())
    raise ValueError(f"unknown motion fidelity formula {formula!r}; choose from {FORMULAS}")


def grid_points(height: int, width: int, grid_size: int) -> torch.Tensor:
    """grid_size x grid_size points (x, y) spread over the frame, away from the border."""
    ys = (torch.arange(grid_size, dtype=torch.float32) + 0.5) * height / grid_size
    xs = (torch.arange(grid_size, dtype=torch.float32) + 0.5) * width / grid_size
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=-1)


def tracks_from_flows(flows: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Carry a grid of points along forward flows (T-1, 2, H, W): p_{t+1} = p_t + flow_t(p_t), the flow
    sampled bilinearly at p_t, positions kept inside the frame. Returns (N, T, 2)."""
    _, _, height, width = flows.shape
    points = grid_points(height, width, grid_size).to(flows.device)
    track = [points]
    for flow in flows.float():
        # grid_sample wants coordinates in [-1, 1] (align_corners=True: -1 is pixel 0's centre)
        norm = torch.stack([points[:, 0] / max(width - 1, 1), points[:, 1] / max(height - 1, 1)], -1) * 2 - 1
        sampled = F.grid_sample(flow[None], norm[None, :, None, :], mode="bilinear", align_corners=True)
        points = points + sampled[0, :, :, 0].T
        points = torch.stack([points[:, 0].clamp(0, width - 1), points[:, 1].clamp(0, height - 1)], -1)
        track.append(points)
    return torch.stack(track, dim=1).cpu()
