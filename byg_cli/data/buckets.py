"""Aspect-ratio buckets for real images: sizes of about the same area (resolution^2) whose sides are multiples
of `step`; each image goes to the bucket nearest its aspect ratio, and every per-process batch is drawn from
one bucket (so its tensors stack without padding or distortion)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from byg_cli.errors import BygError


def make_buckets(resolution: int, step: int = 16, max_aspect: float = 2.0) -> list[tuple[int, int]]:
    """(width, height) pairs with width * height ~ resolution^2, both multiples of `step`, side ratio at most
    `max_aspect`: for each short side the long side that keeps the area closest to resolution^2, both ways."""
    if resolution % step:
        raise BygError(f"data.resolution {resolution} is not a multiple of data.bucket_step {step}")
    area = resolution * resolution
    found = set()
    for w in range(step, resolution + 1, step):  # portrait and square; landscape by mirroring
        h = max(step, int(round(area / w / step)) * step)
        if h >= w and h / w <= max_aspect + 1e-9:
            found.update({(w, h), (h, w)})
    return sorted(found)


def nearest_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is nearest (in log ratio) to width / height."""
    target = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - target), abs(b[0] * b[1] - width * height)))


def image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as err:
        raise BygError(f"{path}: cannot read image ({err})") from None


def assign_buckets(paths: Sequence[Path], resolution: int, step: int = 16, max_aspect: float = 2.0
                   ) -> list[tuple[int, int]]:
    buckets = make_buckets(resolution, step, max_aspect)
    return [nearest_bucket(*image_size(p), buckets) for p in paths]


class BucketBatches:
    """Per-process batches drawn within one bucket, as a pure function of (seed, group index).

    Each epoch permutes every bucket's members, cuts them into groups of `batch_size` (the last group of a bucket
    is completed from that bucket's start, so every image is used and no group mixes buckets), and shuffles
    the order of all groups. Group k of the run is group k mod G of epoch k // G (G groups per epoch).
    """

    def __init__(self, sizes: Sequence[tuple[int, int]], batch_size: int, seed: int = 0):
        self.batch_size, self.seed = batch_size, seed
        members: dict[tuple[int, int], list[int]] = {}
        for i, size in enumerate(sizes):
            members.setdefault(tuple(size), []).append(i)
        self.buckets = sorted(members)
        self.members = [np.array(members[b]) for b in self.buckets]
        self.groups_per_epoch = sum(-(-len(m) // batch_size) for m in self.members)
        self._epoch: tuple[int, list[list[int]]] | None = None

    def _groups(self, epoch: int) -> list[list[int]]:
        if self._epoch is None or self._epoch[0] != epoch:
            groups = []
            for b, m in enumerate(self.members):
                perm = m[np.random.default_rng([self.seed, epoch, b]).permutation(len(m))]
                padded = np.resize(perm, -(-len(m) // self.batch_size) * self.batch_size)
                groups += [padded[i:i + self.batch_size].tolist() for i in range(0, len(padded), self.batch_size)]
            order = np.random.default_rng([self.seed, epoch]).permutation(len(groups))
            self._epoch = (epoch, [groups[i] for i in order])
        return self._epoch[1]

    def group(self, k: int) -> list[int]:
        epoch, pos = divmod(k, self.groups_per_epoch)
        return self._groups(epoch)[pos]
