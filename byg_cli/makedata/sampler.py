"""Which edit types a VLM may choose from for one image (appendix D.1).

For each image, k categories (default 3) are drawn without replacement with weights

    w_c = priority_c * balance_c,   balance_c = ((N * share_c + 1) / (u_c + 1)) ** strength   (clipped)

where priority_c is the taxonomy's fixed priority (remove and replace slightly over-sampled), share_c is the
priority normalised to sum 1 (the *target share*), u_c how often c was the accepted edit type so far in this
run and N the number of accepted records so far. A category used less than its target share gets a balance
term above 1 and is offered more often, one used more gets less; so the accepted edit types converge to the
target shares whatever the VLM's own preferences among the offered choices (tests/test_makedata_sampler.py
checks this over 1,000 simulated draws).

Every draw takes its randomness from an RNG made from the run's seed and the image's path (`image_rng`), so
an image gets the same draw whether the run is fresh or resumed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from byg_cli.errors import BygError
from byg_cli.makedata.taxonomy import EDIT_TYPES


def image_rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class CategorySampler:
    def __init__(self, *, balance: bool = True, strength: float = 4.0, clip: float = 20.0):
        self.priority = {t.key: t.priority for t in EDIT_TYPES}
        total = sum(self.priority.values())
        self.target = {k: p / total for k, p in self.priority.items()}
        self.balance = balance
        self.strength = strength
        self.clip = clip
        self.usage: Counter[str] = Counter()

    def record(self, edit_type: str) -> None:
        """Count one accepted record of this edit type."""
        self.usage[edit_type] += 1

    def weights(self) -> dict[str, float]:
        if not self.balance:
            return dict(self.priority)
        n = sum(self.usage.values())
        out = {}
        for key, prio in self.priority.items():
            term = ((n * self.target[key] + 1) / (self.usage[key] + 1)) ** self.strength
            out[key] = prio * min(max(term, 1 / self.clip), self.clip)
        return out

    def draw(self, rng: random.Random, k: int = 3) -> list[str]:
        """k distinct categories, drawn one after the other with the current weights."""
        if not 1 <= k <= len(self.priority):
            raise BygError(f"--k must be between 1 and {len(self.priority)}, got {k}")
        weights = self.weights()
        keys = sorted(weights)
        chosen: list[str] = []
        for _ in range(k):
            left = [c for c in keys if c not in chosen]
            chosen.append(rng.choices(left, weights=[weights[c] for c in left])[0])
        return chosen

    def shares(self) -> dict[str, float]:
        n = sum(self.usage.values())
        return {k: (self.usage[k] / n if n else 0.0) for k in self.priority}
