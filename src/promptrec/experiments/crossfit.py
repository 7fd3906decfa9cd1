"""Cross-fitted ID vectors: ``promptrec-crossfit RUN --folds 5``.

An ID model scores the pairs it trained on far better than new ones (biased MF on ML-100K:
training loss 0.31, test log-loss 0.56), so a language model that reads its vectors or scores
while it trains learns to trust them more than they deserve on test. Cross-fitting removes that:
the training pairs are cut into K folds by a hash of (user, item) (data/examples.py:
``fold_of``); the ID run is trained again K times, each time without one fold, and a training
pair reads the vectors of the run that never saw it. Validation and test pairs, which no run
trained on, keep the full run's vectors (``prompt.collaborative.crossfit=true``).

Each fold is an ordinary run folder, ``RUN/crossfit/fold_<k>``, trained from the ID run's saved
config with ``data.holdout_fold=[k, K]``; ``RUN/crossfit/folds.json`` is written last, so a
half-finished cross-fit is never read (running the command again skips the finished folds).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from omegaconf import open_dict

from promptrec.atomic import write_atomic
from promptrec.errors import ConfigError
from promptrec.experiments.reproduce import saved_config
from promptrec.runtime.training import train
from promptrec.strategies.collaborative import CROSSFIT, ID_VECTORS


def crossfit(run_dir: Path, folds: int = 5) -> list[Path]:
    """Train the K fold runs of ``run_dir`` (an ID baseline's finished run); their folders."""
    run_dir = Path(run_dir).resolve()
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-fitting needs at least 2 folds (5 is usual).")
    cfg = saved_config(run_dir)
    if not (run_dir / ID_VECTORS).is_file():
        raise ConfigError(
            f"{run_dir} holds no {ID_VECTORS}: cross-fit an ID baseline that saves its vectors "
            "(experiment=baseline_mf, baseline_bpr or baseline_sasrec), not a language model."
        )
    done = []
    for k in range(folds):
        out = run_dir / CROSSFIT / f"fold_{k}"
        if (out / ID_VECTORS).is_file() and saved_config(out).data.get("holdout_fold") == [
            k,
            folds,
        ]:
            print(f"fold {k}: already trained ({out})")
        else:
            fold_cfg = copy.deepcopy(cfg)
            with open_dict(fold_cfg):  # runs saved before the setting existed lack the key
                fold_cfg.data.holdout_fold = [k, folds]
            fold_cfg.paths.output_dir = str(out)
            print(f"fold {k} of {folds}: training without it → {out}")
            train(fold_cfg)
        done.append(out)
    manifest = {"folds": folds, "runs": [p.name for p in done]}
    write_atomic(run_dir / CROSSFIT / "folds.json", json.dumps(manifest, indent=2))
    return done
