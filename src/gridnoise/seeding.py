"""Independent random streams derived from one run seed.

Each purpose (initialisation, training noise, batches of an epoch, evaluation, sampling)
gets its own seed hashed from (seed, purpose), so the streams of seed 0 never reappear in
seed 1 and a stream can be recreated on its own (e.g. to redraw a run's samples).
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for `purpose`, a pure function of (seed, purpose)."""
    digest = hashlib.sha256(f"gridnoise:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(derive_seed(seed, purpose))
