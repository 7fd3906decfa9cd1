"""Length-grouped batching: batches of prompts of similar length, so dynamic padding adds little.

A batch costs as much as its longest prompt times its size. Random batches of ML-100K prompts
pad about 25% extra tokens; grouping brings that to about 2%. The order stays random where it
matters for training: examples are shuffled, sorted by length only inside windows of
``window × batch_size`` examples, cut into batches, and the batches are shuffled again.

The order depends only on (seed, epoch), not on the global random state, so a resumed run and a
DDP rank (Lightning wraps this sampler and deals its indices out round-robin, which keeps
neighbours of similar length together) see the same batches as an uninterrupted single process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    """Example indices in length-grouped batch order (a DataLoader with the same batch_size
    cuts them into the intended batches: full batches first, the one partial batch last)."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        window: int = 50,
    ):
        if batch_size < 1 or window < 1:
            raise ValueError(f"batch_size and window must be ≥ 1, got {batch_size}, {window}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.shuffle, self.window = batch_size, seed, shuffle, window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at every epoch start (also on the DDP wrapper, which forwards it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:  # evaluation: longest first, so a memory limit shows up at once
            return iter(np.argsort(-self.lengths, kind="stable").tolist())
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        span = self.window * self.batch_size
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        full = [b for b in batches if len(b) == self.batch_size]
        partial = [b for b in batches if len(b) < self.batch_size]
        full = [full[i] for i in rng.permutation(len(full))]
        return iter(np.concatenate(full + partial).tolist() if batches else [])
