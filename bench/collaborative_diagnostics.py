"""Why does a model with MF's score (``prompt.collaborative.score=true``) trail the late fusion of
its parts? Two checks, from a finished run's checkpoint and its cross-fitted MF run:

1. Are the cross-fitted scores it trained on as reliable as the full MF run's on validation and
   test (AUC and spread)? If not, the model learns the wrong trust in MF.
2. Split the model's logit into its text part and its MF part (logit − w·score) and refit their
   mix on validation (logistic regression): if the refit mix scores better on test, the model's
   own mix, learnt on training pairs, is off.
3. With ``--views``: score validation and test again with the ID signal hidden (vectors and
   score), the text-only view that modality dropout (``prompt.collaborative.drop``) trains, and
   refit its mix with MF on validation. The "text part" of check 2 still holds the ID vectors.

    .venv/bin/python bench/collaborative_diagnostics.py RUN MF_RUN [--views]
    # e.g. outputs/results/study_cfx_score_preference_s42 outputs/results/mf_preference_s42
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from promptrec.data.examples import fold_of
from promptrec.data.loaders import load_atomic
from promptrec.data.splits import make_split, select_users
from promptrec.strategies.collaborative import id_scores, load_folds, load_id_vectors


def mf_score(saved: dict, frame: pd.DataFrame) -> np.ndarray:
    users = {u: i for i, u in enumerate(saved["user_ids"])}
    items = {x: i for i, x in enumerate(saved["item_ids"])}
    rows_u = saved["users"][[users[str(u)] for u in frame["user_id"]]].numpy()
    rows_i = saved["items"][[items[str(x)] for x in frame["item_id"]]].numpy()
    return id_scores(rows_u, rows_i, float(saved["bias"][0]))


def liked(frame: pd.DataFrame, threshold: float) -> np.ndarray:
    return (frame["rating"] >= threshold).astype(int).to_numpy()


def score_reliability(mf_run: Path, cfg, data_dir: Path) -> None:
    full = load_id_vectors(mf_run)
    folds = load_folds(mf_run, full)
    interactions = select_users(
        load_atomic(data_dir, cfg.data.name).interactions, cfg.data.max_users
    )
    split = make_split(interactions, cfg.data.split,
                       min_user_interactions=cfg.data.min_user_interactions)  # fmt: skip
    threshold = cfg.task.like_threshold
    train = split[split["split"] == "train"]
    fold = fold_of(train["user_id"], train["item_id"], len(folds))
    oof = np.zeros(len(train))
    for k, saved in enumerate(folds):
        oof[fold == k] = mf_score(saved, train[fold == k])
    print(f"MF, cross-fitted, on training pairs: AUC {roc_auc_score(liked(train, threshold), oof):.4f}"
          f"  score std {oof.std():.3f}")  # fmt: skip
    for name in ("val", "test"):
        part = split[split["split"] == name]
        s = mf_score(full, part)
        print(
            f"MF, full run, on {name:<4}             : AUC "
            f"{roc_auc_score(liked(part, threshold), s):.4f}  score std {s.std():.3f}"
        )


def refit_mix(run: Path, mf_run: Path) -> None:
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    (weight,) = [v.item() for k, v in state["state_dict"].items() if k.endswith("score_weight")]
    full = load_id_vectors(mf_run)
    parts = {}
    for name, file in (("val", "val_predictions.csv"), ("test", "predictions.csv")):
        frame = pd.read_csv(run / file)
        mf = mf_score(full, frame)
        parts[name] = (frame, np.c_[frame["logit"] - weight * mf, mf])
    print(f"learnt MF weight {weight:.3f} (text part weight 1)")
    for name, (frame, x) in parts.items():
        print(f"{name:<4}: model AUC {roc_auc_score(frame['label'], frame['logit']):.4f}, text part "
              f"{roc_auc_score(frame['label'], x[:, 0]):.4f}, MF part "
              f"{roc_auc_score(frame['label'], x[:, 1]):.4f}")  # fmt: skip
    val, test = parts["val"], parts["test"]
    mix = LogisticRegression(C=1e6).fit(val[1], val[0]["label"])
    text_w, mf_w = mix.coef_[0]
    print(f"mix refit on validation: text {text_w:.3f}, MF {mf_w:.3f} (MF/text {mf_w / text_w:.3f}"
          f" vs learnt {weight:.3f}); test AUC "
          f"{roc_auc_score(test[0]['label'], mix.decision_function(test[1])):.4f}")  # fmt: skip


@torch.no_grad()
def text_only_view(run: Path, cfg) -> None:
    """Check 3: the checkpoint's scores with and without the ID signal, and their refit."""
    from promptrec.runtime.build import build_datamodule, build_module, load_weights, run_precision

    datamodule = build_datamodule(cfg)
    module = load_weights(build_module(cfg, datamodule)[0], run / "checkpoints" / "best.ckpt")
    collaborative = module.model.collaborative
    bf16 = run_precision(cfg).startswith("bf16")
    views = {}
    for name, loader in (("val", datamodule.val_dataloader()),
                         ("test", datamodule.test_dataloader())):  # fmt: skip
        rows = []
        for batch in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                collaborative.hidden = False
                full = module(batch).float()[:, -1]
                collaborative.hidden = True
                text = module(batch).float()[:, -1]
            rows.append(np.c_[full, text, batch["cf_score"].float(), batch["labels"].float()])
        views[name] = np.concatenate(rows)
    collaborative.hidden = False
    for name, x in views.items():
        print(f"{name:<4}: model AUC {roc_auc_score(x[:, 3], x[:, 0]):.4f}, text-only view "
              f"(ID signal hidden) {roc_auc_score(x[:, 3], x[:, 1]):.4f}")  # fmt: skip
    mix = LogisticRegression(C=1e6).fit(views["val"][:, 1:3], views["val"][:, 3])
    text_w, mf_w = mix.coef_[0]
    test = views["test"]
    print(f"text-only view + MF, mix refit on validation: text {text_w:.3f}, MF {mf_w:.3f}; test "
          f"AUC {roc_auc_score(test[:, 3], mix.decision_function(test[:, 1:3])):.4f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run", type=Path, help="a finished run with prompt.collaborative.score=true"
    )
    parser.add_argument("mf_run", type=Path, help="its cross-fitted MF run (promptrec-crossfit)")
    parser.add_argument("--data", type=Path, default=Path("data/ml-100k-atomic"))
    parser.add_argument("--views", action="store_true",
                        help="also score the checkpoint with the ID signal hidden (check 3)")  # fmt: skip
    args = parser.parse_args(argv)
    cfg = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    score_reliability(args.mf_run, cfg, args.data)
    refit_mix(args.run, args.mf_run)
    if args.views:
        text_only_view(args.run, cfg)


if __name__ == "__main__":
    main()
