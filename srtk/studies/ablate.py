"""`srtk ablate`: a paper's ablation table re-run. Every variant of a study (srtk.studies.paper_tables) is trained by
the one engine and evaluated by the one protocol (srtk.evaluate.run_evaluation); the result is one table in the
paper's layout with the paper's numbers and this run's side by side (JSON, CSV, Markdown).

The study folder DIR holds one folder per job: the shared first steps (the PSNR-oriented model the GAN variants
start from, the NSEs of the structure loss) and the variants. A job is finished when its training wrote
`result.json` with status "completed" and, for a variant, its `evaluation.json` exists; a restart skips finished
jobs and resumes an unfinished one from its last checkpoint (`checkpoint.resume`, which the engine continues
exactly). `DIR/study.json` holds the settings; a restart with other settings is refused rather than mixed.

Several devices: one worker process per device (`python -m srtk.studies.ablate DIR JOB DEVICE`), each running one
job at a time as soon as the jobs it reads are finished.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from srtk.config.ablate import AblateConfig
from srtk.config.inference import EvalConfig
from srtk.config.resolve import build
from srtk.config.train import TrainConfig
from srtk.data.datasets import BENCHMARKS, resolve_dataset
from srtk.data.io import write_json, write_text
from srtk.errors import ConfigError, SrtkError
from srtk.evaluate import run_evaluation
from srtk.presets import resolve_pretext_config, resolve_train_config
from srtk.progress import ProgressFn, no_progress
from srtk.studies.paper_tables import COLUMNS, METRIC_KEYS, STUDIES, Step, Study, Variant
from srtk.train.engine import run_training
from srtk.train.run_folder import FINAL_MODEL, RESULT_FILE, STATE_FILE
from srtk.version import __version__

SETTINGS_FILE, EVALUATION_FILE = "study.json", "evaluation.json"
TABLE_STEM = "table"  # DIR/table.json, table.csv, table.md
LOG_FOLDER = "logs"  # the workers' output, one file per job
INIT_STEP, NSE_STEP = "psnr-init", "nse-contrastive"  # the steps --init / --nse stand in for
PAPER_COLUMN, RUN_COLUMN = "paper", "this run"
DECIMALS = {"psnr_y": 3, "ssim_y": 4, "lpips": 4, "niqe": 3}
POLL_SECONDS = 0.5


class StudyInterrupted(SrtkError):
    """A training run of the study stopped before its end (Ctrl-C / SIGTERM); its checkpoint is on disk."""


@dataclass(frozen=True)
class Job:
    """One training run of a study (a step or a variant) into DIR/name, and what it reads from other jobs."""

    name: str
    config: TrainConfig  # resolved; the device and `checkpoint.resume` are set when it runs
    needs: tuple[str, ...]  # jobs whose final.safetensors this one reads (model.init, structure.nse)
    variant: Variant | None = None  # None: a shared step (not evaluated, not in the table)

    @property
    def out_dir(self) -> Path:
        return self.config.checkpoint.out_dir


@dataclass(frozen=True)
class StudyPlan:
    study: Study
    cfg: AblateConfig
    jobs: tuple[Job, ...]  # in an order that runs every job after those it needs
    eval_config: EvalConfig  # model and device filled in per variant

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ConfigError(f"{self.cfg.out_dir}: study {self.study.name} has no job {name!r}")


@dataclass(frozen=True)
class StudyResult:
    out_dir: Path
    table: dict[str, Any]  # what table.json holds
    files: tuple[Path, ...]  # table.json, table.csv, table.md
    ran: tuple[str, ...]  # jobs this call trained or evaluated (the others were finished already)


# ------------------------------------------------------------------------------------------------- describe


def describe_studies() -> str:
    """Every study with its source, shared steps and variants (for `srtk ablate --list`)."""
    blocks = []
    for study in STUDIES.values():
        lines = [f"{study.name}: {study.source}, {study.caption}; on {', '.join(study.datasets)} "
                 f"({', '.join(study.metrics)})"]  # fmt: skip
        for step in study.steps:
            stand_in = {INIT_STEP: " (or --init CHECKPOINT)", NSE_STEP: " (or --nse CHECKPOINT)"}.get(step.name, "")
            lines.append(f"  first step {step.name}: {step.about}{stand_in}")
        for variant in study.variants:
            lines.append(f"  {variant.name:<16} {variant.label}: {describe_variant(variant)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def describe_variant(variant: Variant) -> str:
    """'spsr-g + losses.grad_pixel=0, from psnr-init' : the preset, its overrides and its inputs."""
    parts = [variant.method, *(f"{key}={value}" for key, value in variant.overrides.items())]
    text = " + ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]
    inputs = [f"init from {variant.init}" if variant.init else "", f"NSE of {variant.nse}" if variant.nse else ""]
    if variant.needs_embedding:
        inputs.append("E_D of --embedding")
    return ", ".join([text, *filter(None, inputs)])


# ------------------------------------------------------------------------------------------------- plan


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; choose one of: {', '.join(STUDIES)} (srtk ablate --list)")
    return STUDIES[name]


def plan_study(cfg: AblateConfig) -> StudyPlan:
    """Every job of cfg.study resolved and every input checked, before anything is trained."""
    study = get_study(cfg.study)
    out = cfg.out_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: the study's output folder is a file")
    for flag, path in (("--init", cfg.init), ("--nse", cfg.nse), ("--embedding", cfg.embedding)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: {flag} checkpoint not found")
    steps = {step.name: step for step in study.steps}
    given = {INIT_STEP: cfg.init, NSE_STEP: cfg.nse}
    for flag, name in (("--init", INIT_STEP), ("--nse", NSE_STEP)):
        if given[name] is not None and name not in steps:
            raise ConfigError(f"{flag}: study {study.name} has no {name} step (its steps: "
                              f"{', '.join(steps) or 'none'})")  # fmt: skip
    if cfg.embedding is None and any(v.needs_embedding for v in study.variants):
        names = ", ".join(v.label for v in study.variants if v.needs_embedding)
        raise ConfigError(f"study {study.name}: {names} needs --embedding E_D.safetensors (a fixed pre-trained "
                          f"embedding network; `srtk convert` reads the authors')")  # fmt: skip
    variant_names = [v.name for v in study.variants]
    clash = set(variant_names) & set(steps) | {n for n in variant_names if variant_names.count(n) > 1}
    assert not clash, f"study {study.name}: job names used twice: {clash}"  # a slip in paper_tables

    def final(name: str) -> str:
        return str(given[name]) if given.get(name) is not None else str(out / name / FINAL_MODEL)

    flags: dict[str, Any] = {"data.scale": cfg.scale, "losses.allow_random_perceptual": cfg.allow_random_perceptual}
    if cfg.data:
        flags["data.train"] = list(cfg.data)
    if cfg.data_root is not None:
        flags["data.data_root"] = str(cfg.data_root)
    if cfg.iterations is not None:
        flags["optim.iterations"] = cfg.iterations
    flags["runtime.device"] = cfg.devices[0]

    jobs: list[Job] = []
    used_steps = {name for v in study.variants for name in (v.init, v.nse) if name in steps}
    for step in study.steps:
        if step.name in used_steps and given.get(step.name) is None:
            jobs.append(_step_job(step, out, flags, cfg.overrides))
    for variant in study.variants:
        layer = dict(cfg.overrides)  # the user's --set first: a variant's own switches win over them
        layer.update(variant.overrides)
        needs = []
        if variant.init:
            layer["model.init"] = final(variant.init)
            needs.append(variant.init)
        if variant.nse:
            layer["structure.nse"] = final(variant.nse)
            needs.append(variant.nse)
        if variant.needs_embedding:
            layer["contrastive.embedding_checkpoint"] = str(cfg.embedding)
        layer["checkpoint.out_dir"] = str(out / variant.name)
        config = _resolved(f"variant {variant.name}", resolve_train_config, variant.method, flags, layer)
        trained = {job.name for job in jobs}
        needs = [name for name in needs if name in trained]  # given by --init / --nse: nothing to wait for
        jobs.append(Job(variant.name, config, tuple(needs), variant))
    datasets = cfg.datasets or study.datasets
    for name in (*datasets, *(jobs[0].config.data.train if jobs else ())):
        resolve_dataset(name, cfg.data_root)  # a missing benchmark or training set fails now, not after training
    eval_config = EvalConfig(
        datasets=tuple(datasets),
        scale=cfg.scale,
        metrics=cfg.metrics or _study_metrics(study),
        data_root=cfg.data_root,
        device=cfg.devices[0],
        allow_random_lpips=cfg.allow_random_perceptual,
    )
    _check_perceptual_weights(jobs, eval_config)
    return StudyPlan(study=study, cfg=cfg, jobs=tuple(jobs), eval_config=eval_config)


def _step_job(step: Step, out: Path, flags: Mapping[str, Any], overrides: Mapping[str, Any]) -> Job:
    layer = {**overrides, **step.overrides, "checkpoint.out_dir": str(out / step.name)}
    if step.pretext is not None:
        pretext_flags = {k: v for k, v in flags.items() if k != "data.scale"}  # the NSE sees HR patches only
        config = _resolved(f"step {step.name}", resolve_pretext_config, step.pretext, pretext_flags, layer)
    else:
        config = _resolved(f"step {step.name}", resolve_train_config, step.method, flags, layer)
    return Job(step.name, config, ())


def _resolved(
    what: str, resolver: Callable[..., TrainConfig], name: str | None, flags: Mapping, overrides: Mapping
) -> TrainConfig:
    """resolver(name, flags=..., overrides=...), its ConfigError prefixed with the job (a --set key may fit one
    preset and not another)."""
    try:
        return resolver(name, flags=flags, overrides=overrides)
    except ConfigError as error:
        raise ConfigError(f"{what}: {error}") from None


def _study_metrics(study: Study) -> tuple[str, ...]:
    """srtk evaluate metrics for the paper's columns; PI (not computed) is replaced by NIQE, its other half."""
    keys = [METRIC_KEYS[m] or "niqe" for m in study.metrics]
    return tuple(dict.fromkeys(keys))


def _check_perceptual_weights(jobs: Sequence[Job], eval_config: EvalConfig) -> None:
    """The ImageNet weights the study will need are in the hub cache (else one error now, not after hours)."""
    from torchvision.models import AlexNet_Weights, VGG19_Weights

    from srtk.models.pretrained import require_hub_checkpoint

    if "lpips" in eval_config.result_keys and not eval_config.allow_random_lpips:
        require_hub_checkpoint(AlexNet_Weights.IMAGENET1K_V1, "AlexNet (the LPIPS metric)")
    for job in jobs:
        losses = job.config.losses
        if losses.allow_random_perceptual:
            continue
        if losses.perceptual > 0 and losses.perceptual_kind != "lpips":
            require_hub_checkpoint(VGG19_Weights.IMAGENET1K_V1, f"VGG19 (the perceptual loss of {job.name})")
        if losses.perceptual > 0 and losses.perceptual_kind == "lpips":
            require_hub_checkpoint(AlexNet_Weights.IMAGENET1K_V1, f"AlexNet (the LPIPS loss of {job.name})")


# ------------------------------------------------------------------------------------------------- run


def run_study(cfg: AblateConfig, *, progress: ProgressFn = no_progress) -> StudyResult:
    """Train and evaluate every unfinished job of cfg.study into cfg.out_dir, then write the table."""
    plan = plan_study(cfg)
    _claim_folder(plan)
    pending = [job for job in plan.jobs if not job_finished(job)]
    ran = tuple(job.name for job in pending)
    if len(cfg.devices) == 1:
        for done, job in enumerate(pending):
            progress(f"ablate {plan.study.name}", done, len(pending), job.name)
            run_job(plan, job, cfg.devices[0], progress=progress)
        progress(f"ablate {plan.study.name}", len(pending), len(pending), "")
    else:
        _run_workers(plan, pending, progress)
    return write_table(plan, ran)


def _claim_folder(plan: StudyPlan) -> None:
    """Write DIR/study.json, or check that the one there has the same settings (a restart of the same study)."""
    path = plan.cfg.out_dir / SETTINGS_FILE
    settings = plan.cfg.settings()
    if path.is_file():
        saved = json.loads(path.read_text()).get("settings", {})
        differing = sorted(key for key in settings if saved.get(key) != settings[key])
        if differing:
            raise ConfigError(f"{path}: this folder holds a study run with other settings ({', '.join(differing)}); "
                              f"use another --out, or the same options to continue it")  # fmt: skip
        return
    if plan.cfg.out_dir.is_dir() and any(plan.cfg.out_dir.iterdir()):
        raise ConfigError(
            f"{plan.cfg.out_dir}: not empty and not a study folder (no {SETTINGS_FILE}); use another --out"
        )
    write_json(path, {"srtk_version": __version__, "settings": settings})


def training_finished(out_dir: Path) -> bool:
    result = out_dir / RESULT_FILE
    if not result.is_file() or not (out_dir / FINAL_MODEL).is_file():
        return False
    return json.loads(result.read_text()).get("status") == "completed"


def job_finished(job: Job) -> bool:
    if not training_finished(job.out_dir):
        return False
    return job.variant is None or (job.out_dir / EVALUATION_FILE).is_file()


def run_job(plan: StudyPlan, job: Job, device: str, *, progress: ProgressFn = no_progress) -> None:
    """Train `job` (resuming its checkpoint if one is there), then evaluate it if it is a variant."""
    out = job.out_dir
    if not training_finished(out):
        resume = (out / STATE_FILE).is_file()
        # Without a checkpoint there is nothing to resume: the files of a run killed before its first checkpoint
        # are replaced (overwrite removes a run's own files, nothing else).
        checkpoint = replace(job.config.checkpoint, resume=resume, overwrite=not resume)
        config = replace(job.config, runtime=replace(job.config.runtime, device=device), checkpoint=checkpoint)
        result = run_training(config, progress=progress)
        if result.status != "completed":
            raise StudyInterrupted(f"{out}: {job.name} stopped at iteration {result.iterations}; run the same "
                                   f"srtk ablate command again to resume it")  # fmt: skip
    if job.variant is not None and not (out / EVALUATION_FILE).is_file():
        eval_config = replace(plan.eval_config, model=str(out / FINAL_MODEL), device=device)
        evaluation = run_evaluation(eval_config, progress=progress)
        if evaluation.num_failed:
            failed = [f"{name}: {msg}" for ds in evaluation.datasets.values() for name, msg in ds.failed.items()]
            raise SrtkError(f"{out}: evaluation of {job.name} failed on {len(failed)} image(s): {failed[0]}")
        write_json(out / EVALUATION_FILE, evaluation.as_dict())


def _run_workers(plan: StudyPlan, pending: list[Job], progress: ProgressFn) -> None:
    """One worker process per device, each running one job at a time once the jobs it needs are finished."""
    logs = plan.cfg.out_dir / LOG_FOLDER
    logs.mkdir(parents=True, exist_ok=True)
    waiting = list(pending)
    finished = {job.name for job in plan.jobs if job not in pending}
    running: dict[int, tuple[Job, subprocess.Popen, Path]] = {}
    failures: list[str] = []
    total = len(pending)
    while waiting or running:
        for slot, device in enumerate(plan.cfg.devices):
            if slot in running or failures:
                continue
            ready = next((job for job in waiting if set(job.needs) <= finished), None)
            if ready is None:
                break
            waiting.remove(ready)
            log = logs / f"{ready.name}.log"
            command = [sys.executable, "-m", "srtk.studies.ablate", str(plan.cfg.out_dir), ready.name, device]
            with log.open("a") as handle:  # the child keeps its own copy of the descriptor
                child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
            running[slot] = (ready, child, log)
        if not running:
            if failures or not waiting:
                break
            raise SrtkError(
                f"{plan.cfg.out_dir}: jobs {', '.join(j.name for j in waiting)} wait on jobs that cannot run"
            )
        time.sleep(POLL_SECONDS)
        for slot, (job, child, log) in list(running.items()):
            code = child.poll()
            if code is None:
                continue
            del running[slot]
            if code == 0:
                finished.add(job.name)
            else:
                lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
                failures.append(f"{job.name} on {plan.cfg.devices[slot]} exited {code} ({lines[-1]}; see {log})")
        progress(f"ablate {plan.study.name}", total - len(waiting) - len(running), total, ", ".join(
            job.name for job, _, _ in running.values()))  # fmt: skip
    if failures:
        raise SrtkError(f"{plan.cfg.out_dir}: {'; '.join(failures)}; finished jobs are kept, run again to go on")


def worker(out_dir: Path, job_name: str, device: str) -> None:
    """A worker process's job: the study of DIR/study.json re-planned, and its job `job_name` run on `device`."""
    path = out_dir / SETTINGS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; workers run inside a study folder made by srtk ablate")
    settings = json.loads(path.read_text())["settings"]
    cfg = build(AblateConfig, {**settings, "out_dir": out_dir, "devices": [device]})
    plan = plan_study(cfg)
    run_job(plan, plan.job(job_name), device)


# ------------------------------------------------------------------------------------------------- table


def _run_values(job: Job, eval_config: EvalConfig) -> dict[str, dict[str, float]]:
    """{dataset name as given: {result key: mean}} of a variant's evaluation.json."""
    saved = json.loads((job.out_dir / EVALUATION_FILE).read_text())["datasets"]
    means = [ds["mean"] for ds in saved.values()]  # in the order of eval_config.datasets
    return {name: mean for name, mean in zip(eval_config.datasets, means, strict=True)}


def _format(value: float | None, key: str | None) -> str:
    if value is None:
        return "-"
    if key is None:  # a paper number: as printed
        return f"{value:g}"
    return f"{value:.{DECIMALS.get(key, 4)}f}"


def _columns_of(plan: StudyPlan) -> list[tuple[str, str]]:
    """(dataset, paper metric) pairs shown: the paper's datasets and this run's, each with the paper's metrics
    and, where the paper reports PI, NIQE (measured in its place)."""
    datasets = list(dict.fromkeys([*plan.study.datasets, *plan.eval_config.datasets]))
    metrics = list(plan.study.metrics)
    if any(METRIC_KEYS[m] is None for m in metrics):
        metrics.append("NIQE")
    return [(d, m) for d in datasets for m in metrics]


def build_table(plan: StudyPlan) -> dict[str, Any]:
    """The study's table as data: settings, and per variant the paper's and this run's numbers."""
    study = plan.study
    variants = []
    for job in plan.jobs:
        if job.variant is None:
            continue
        variant = job.variant
        run = _run_values(job, plan.eval_config)
        result = json.loads((job.out_dir / RESULT_FILE).read_text())
        variants.append({
            "name": variant.name,
            "label": variant.label,
            "method": variant.method,
            "overrides": dict(variant.overrides),
            "inputs": {"init": variant.init, "nse": variant.nse, "embedding": variant.needs_embedding},
            "marks": dict(variant.marks),
            "paper": {d: dict(values) for d, values in variant.paper.items()},
            "run": run,
            "iterations": result["iterations"],
            "wall_time_s": result["wall_time_s"],
            "folder": str(job.out_dir),
        })  # fmt: skip
    return {
        "study": study.name,
        "source": study.source,
        "caption": study.caption,
        "layout": study.layout,
        "paper_metrics": {m: METRIC_KEYS[m] for m in study.metrics},
        "settings": run_settings(plan),
        "notes": list(study.notes),
        "variants": variants,
        "srtk_version": __version__,
    }


def run_settings(plan: StudyPlan) -> dict[str, Any]:
    """What this run did differently from the papers, stated above its table."""
    cfg, jobs = plan.cfg, plan.jobs
    variant_jobs = [job for job in jobs if job.variant is not None]
    iterations = {job.name: job.config.optim.iterations for job in jobs}
    perceptual = {}
    for job in variant_jobs:
        losses = job.config.losses
        if losses.perceptual <= 0:
            perceptual[job.name] = "no perceptual loss"
        else:
            weights = "random weights" if losses.allow_random_perceptual else "ImageNet weights"
            perceptual[job.name] = f"{losses.perceptual_kind} x{losses.perceptual:g} ({weights})"
    return {
        "iterations": iterations,
        "iterations_flag": cfg.iterations,
        "training_data": list(variant_jobs[0].config.data.train) if variant_jobs else [],
        "data_root": str(cfg.data_root) if cfg.data_root else None,
        "evaluation": {"datasets": list(plan.eval_config.datasets), "metrics": list(plan.eval_config.result_keys),
                       "scale": cfg.scale, "lpips_weights": "random" if cfg.allow_random_perceptual else "ImageNet"},
        "devices": list(cfg.devices),
        "overrides": dict(cfg.overrides),
        "perceptual_loss": perceptual,
        "allow_random_perceptual": cfg.allow_random_perceptual,
        "given": {"init": str(cfg.init) if cfg.init else None, "nse": str(cfg.nse) if cfg.nse else None,
                  "embedding": str(cfg.embedding) if cfg.embedding else None},
        "steps": [job.name for job in jobs if job.variant is None],
    }  # fmt: skip


def _dataset_label(name: str) -> str:
    """A benchmark's name, or a folder's own name (not its whole path)."""
    return name if name.lower() in BENCHMARKS else Path(name).name


def table_grid(table: Mapping[str, Any], columns: Sequence[tuple[str, str]]) -> list[list[str]]:
    """The table as rows of cells in the paper's layout (header row first), paper and run side by side."""
    variants = table["variants"]
    mark_names = list(dict.fromkeys(name for v in variants for name in v["marks"]))

    def cells(variant: Mapping[str, Any], dataset: str, metric: str) -> list[str]:
        key = METRIC_KEYS.get(metric)
        paper = variant["paper"].get(dataset, {}).get(metric)
        run = variant["run"].get(dataset, {}).get(key) if key else None
        return [_format(paper, None), _format(run, key)]

    if table["layout"] == COLUMNS:
        header = ["dataset", "metric"]
        for variant in variants:
            header += [f"{variant['label']} {PAPER_COLUMN}", f"{variant['label']} {RUN_COLUMN}"]
        rows = [header]
        for mark in mark_names:
            rows.append([mark, ""] + [cell for v in variants for cell in (v["marks"].get(mark, ""), "")])
        for dataset, metric in columns:
            row = [_dataset_label(dataset), metric]
            rows.append(row + [cell for v in variants for cell in cells(v, dataset, metric)])
        return rows
    header = ["variant", *mark_names]
    for dataset, metric in columns:
        label = _dataset_label(dataset)
        header += [f"{label} {metric} {PAPER_COLUMN}", f"{label} {metric} {RUN_COLUMN}"]
    rows = [header]
    for variant in variants:
        row = [variant["label"], *(variant["marks"].get(mark, "") for mark in mark_names)]
        for dataset, metric in columns:
            row += cells(variant, dataset, metric)
        rows.append(row)
    return rows


def markdown(table: Mapping[str, Any], grid: Sequence[Sequence[str]]) -> str:
    """The table with its settings stated above it."""
    settings = table["settings"]
    iterations = settings["iterations"]
    distinct = sorted(set(iterations.values()))
    if settings["iterations_flag"] is not None:
        length = f"{settings['iterations_flag']} iterations per training run (--iterations; the papers' are far longer)"
    else:
        length = "each preset's iterations (the papers'): " + ", ".join(f"{k} {v}" for k, v in iterations.items())
    perceptual = sorted(set(settings["perceptual_loss"].values()))
    lines = [
        f"# {table['source']}: {table['caption']}",
        "",
        f"Study `{table['study']}`: the paper's numbers ({PAPER_COLUMN}) beside this run's ({RUN_COLUMN}).",
        "",
        f"- training: {length}" + (f" ({len(distinct)} lengths)" if len(distinct) > 1 else ""),
        f"- training data: {', '.join(settings['training_data']) or '-'}"
        + (f" (data root {settings['data_root']})" if settings["data_root"] else ""),
        f"- evaluation: {', '.join(settings['evaluation']['datasets'])} x{settings['evaluation']['scale']}, "
        f"{', '.join(settings['evaluation']['metrics'])} (srtk evaluate's protocol)",
        f"- devices: {', '.join(settings['devices'])}",
        f"- perceptual loss: {'; '.join(perceptual) or '-'}",
    ]
    if settings["allow_random_perceptual"]:
        lines.append("- no ImageNet weights were used (--allow-random-perceptual): VGG/LPIPS losses and the LPIPS "
                     "metric ran on randomly initialised networks; their numbers are not the papers'")  # fmt: skip
    if settings["overrides"]:
        lines.append("- --set for every run: " + ", ".join(f"{k}={v}" for k, v in settings["overrides"].items()))
    if settings["steps"]:
        lines.append(f"- shared first steps trained in this folder: {', '.join(settings['steps'])}")
    given = {k: v for k, v in settings["given"].items() if v}
    if given:
        lines.append("- given: " + ", ".join(f"--{k} {v}" for k, v in given.items()))
    lines += [f"- note: {note}" for note in table["notes"]]
    lines += ["", "| " + " | ".join(grid[0]) + " |", "|" + "---|" * len(grid[0])]
    lines += ["| " + " | ".join(row) + " |" for row in grid[1:]]
    lines += ["", "Variants:", ""]
    for v in table["variants"]:
        changes = ", ".join(f"{k}={val}" for k, val in v["overrides"].items()) or "the preset as it is"
        lines.append(f"- {v['label']} (`{v['name']}`): {v['method']}, {changes}; "
                     f"{v['iterations']} iterations ({v['wall_time_s']:.0f} s in its last session)")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_table(plan: StudyPlan, ran: tuple[str, ...] = ()) -> StudyResult:
    """DIR/table.json, table.csv and table.md of a study whose jobs are all finished."""
    out = plan.cfg.out_dir
    table = build_table(plan)
    grid = table_grid(table, _columns_of(plan))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(grid)
    files = (out / f"{TABLE_STEM}.json", out / f"{TABLE_STEM}.csv", out / f"{TABLE_STEM}.md")
    write_json(files[0], table)
    write_text(files[1], text.getvalue())
    write_text(files[2], markdown(table, grid))
    return StudyResult(out_dir=out, table=table, files=files, ran=ran)


def _stop_when_orphaned(parent: int) -> None:
    """SIGTERM this worker once its srtk ablate is gone (killed): the engine checkpoints and stops, and the next
    srtk ablate resumes the job, instead of a stray worker training on beside it."""
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":  # a worker of _run_workers: python -m srtk.studies.ablate DIR JOB DEVICE
    if len(sys.argv) != 4:
        sys.exit("usage: python -m srtk.studies.ablate STUDY_FOLDER JOB DEVICE (started by srtk ablate --devices)")
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        worker(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
    except SrtkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
