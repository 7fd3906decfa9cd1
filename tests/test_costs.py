"""Peak memory per job: the reset makes each multirun job report its own peak, not the process's."""

from __future__ import annotations

import numpy as np
import pytest

from promptrec.runtime.costs import peak_memory_mb, reset_peak_rss


def test_peak_rss_restarts_after_a_reset():
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    with_block = peak_memory_mb()["cost/peak_rss_mb"]
    del block
    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    assert peak_memory_mb()["cost/peak_rss_mb"] < with_block - 200
