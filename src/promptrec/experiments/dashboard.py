"""The comparison on the W&B side: ``promptrec-summarize SWEEP --wandb``.

Each sweep job is its own W&B run; what compares them lives here. One *summary run* joins the
sweep's W&B group (job type ``summary``): the per-configuration table (n, mean ± std, the 95%
interval and the ``real?`` mark) as a W&B Table, and the summary's figures as images. A
*workspace* for the sweep (``wandb-workspaces``) shows the task's headline metrics grouped by
prompt × tuning mode, a parallel-coordinates panel for hyperparameter studies, and the costs
(trainable parameters, samples/s, peak memory).

Offline (the default, like every run here) both are written into the sweep folder: the summary
run as an offline W&B run (``wandb sync`` uploads it) and the workspace as ``workspace.json``.
Online (``logger.wandb.offline=false`` in the runs, and a login) the workspace is saved too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from promptrec.atomic import write_atomic
from promptrec.errors import PromptRecError

COSTS = ["params/trainable", "cost/train_samples_per_s", "cost/peak_rss_mb"]
GROUP_BY = {"prompt": "prompt.name", "tuning": "tuning.mode", "model": "model.name_or_path"}


def sweep_identity(runs: pd.DataFrame) -> dict:
    """The W&B project, entity, group and mode the sweep's runs logged with (run.json, config)."""
    first = runs.iloc[0]
    record = json.loads((Path(first["run"]) / "run.json").read_text())
    if not record.get("wandb_group"):
        raise PromptRecError(
            "--wandb: these runs logged no W&B run (logger=csv?), so there is no W&B group to "
            "add a summary to. Run the sweep with the default logger (W&B offline) to use it."
        )
    offline = first.get("cfg/logger.wandb.offline")
    return {"project": str(first.get("cfg/logger.wandb.project") or "promptrec"),
            "entity": first.get("cfg/logger.wandb.entity") or None,
            "group": record["wandb_group"],
            "offline": True if offline is None or pd.isna(offline) else bool(offline)}  # fmt: skip


def log_summary_run(out: Path, identity: dict, tables: dict, figures: dict[str, Path]) -> Path:
    """One W&B run in the sweep's group with the tables and figures; its local folder."""
    import wandb

    run = wandb.init(project=identity["project"], entity=identity["entity"],
                     group=identity["group"], job_type="summary",
                     name=f"summary · {identity['group']}", dir=str(out),
                     mode="offline" if identity["offline"] else "online")  # fmt: skip
    for task, (table, _, _) in tables.items():
        run.log({f"summary/{task}": wandb.Table(dataframe=table.astype(str))})
    run.log({f"figures/{name}": wandb.Image(str(path)) for name, path in figures.items()
             if str(path).endswith(".png")})  # fmt: skip
    folder = Path(run.dir).parent
    run.finish()
    return folder


def workspace(identity: dict, tables: dict, study: bool):
    """The sweep's workspace: headline metrics by prompt × tuning mode, a parallel-coordinates
    panel for hyperparameter studies, and the cost panels."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    sections = []
    for task, (_, settings, metrics) in tables.items():
        groups = [GROUP_BY[s] for s in settings if s in GROUP_BY] or ["prompt.name", "tuning.mode"]
        shown = [m for m in metrics if m.startswith(("test/", "val/"))]
        panels = [wr.BarPlot(title=m, metrics=[m], groupby=wr.Config(groups[0]),
                             groupby_aggfunc="mean", groupby_rangefunc="stddev") for m in shown]  # fmt: skip
        panels.append(wr.LinePlot(title="training loss", x="Step", y=["train/loss"],
                                  groupby=wr.Config(groups[0]), groupby_aggfunc="mean"))  # fmt: skip
        if study:
            columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(s)) for s in settings]
            columns += [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(metrics[0]))]
            panels.append(wr.ParallelCoordinatesPlot(title="trials", columns=columns))
        sections.append(ws.Section(name=f"{task}: headline metrics", panels=panels, is_open=True))
        costs = [wr.BarPlot(title=c, metrics=[c], groupby=wr.Config(groups[0])) for c in COSTS]
        sections.append(ws.Section(name=f"{task}: costs", panels=costs))
    runset = ws.RunsetSettings(filters=[ws.Metric("Group") == identity["group"]],
                               groupby=[ws.Config(g) for g in ("prompt.name", "tuning.mode")])  # fmt: skip
    return ws.Workspace(entity=identity["entity"] or "", project=identity["project"],
                        name=f"sweep {identity['group']}"[:128], sections=sections,
                        runset_settings=runset)  # fmt: skip


def publish(out: Path, runs: pd.DataFrame, tables: dict, figures: dict[str, Path],
            study: bool) -> dict[str, Path]:  # fmt: skip
    """Log the summary run and write (offline) or save (online) the workspace."""
    identity = sweep_identity(runs)
    written = {"wandb_summary_run": log_summary_run(out, identity, tables, figures)}
    view = workspace(identity, tables, study)
    written["workspace"] = out / "workspace.json"
    # the spec exactly as save() would send it (wandb-workspaces exposes no public serialiser)
    write_atomic(written["workspace"], view._to_model().model_dump_json(indent=1))
    if not identity["offline"]:
        view.save()
    return written
