"""Pack the runs of scripts/train_bundled_models.sh into srtk/bundled/ and measure them with `srtk compare`.

python scripts/bundle_models.py pack [--runs runs/bundled]
    each run's final weights -> srtk/bundled/NAME.safetensors (float16: half the size) and a card recording
    the training: data, iterations, the settings that differ from the method's paper preset, init, NSE,
    hardware, wall time, the loss terms that were active and why the others were not.
python scripts/bundle_models.py measure [--full] [--models a,b] [--out runs/zoo-compare]
    `srtk compare` of bicubic and the bundled models on Set5, Set14 and Urban100 (PSNR/SSIM on Y, NIQE), CPU
    seconds for a 256x256 input; writes the metrics into the cards, MODEL_ZOO.md and its plot. With --models
    it only fills the shared SR cache (runs/zoo-cache), so that the full run later reuses it.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from srtk.data.io import write_json
from srtk.models.bundled import BUNDLED_FOLDER, bundled_cards, bundled_models
from srtk.models.checkpoint import ModelCard, card_path, read_card, save_model
from srtk.models.complexity import count_parameters
from srtk.models.registry import load_model_with_card, load_network_with_card
from srtk.presets import is_perceptual_method, resolve_train_config
from srtk.version import __version__

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SRTK_SHARED", ROOT.parent / "shared"))
DATASETS = ("set5", "set14", "urban100")
# Without --full, Urban100's first 20 images (sorted names), labelled as such everywhere: a quick check. The shipped
# cards and MODEL_ZOO.md are measured with --full (all 100: about an hour for the nine models on a 2-core CPU).
URBAN_SUBSET = 20
METRICS = ("psnr_y", "ssim_y", "niqe")  # LPIPS needs AlexNet ImageNet weights, absent on these machines
NO_IMAGENET = "ImageNet VGG19/AlexNet weights are not on the machine that trained it (srtk never downloads them)"

# Bundled name -> (run folder, step of train_bundled_models.sh, what it is).
BUNDLE: dict[str, tuple[str, str, str]] = {
    "psnr-rrdb": ("psnr-rrdb", "psnr_rrdb", "PSNR-oriented RRDBNet (L1), the init of the RRDB-based GAN models"),
    "psnr-edsr": ("psnr-edsr", "psnr_edsr", "PSNR-oriented EDSR-baseline (16 blocks, 64 features), L1"),
    "esrgan": ("esrgan", "esrgan", "ESRGAN: RaGAN with a VGG-style critic, from psnr-rrdb"),
    "spsr-g": ("spsr-g", "spsr_g", "SPSR-G: gradient branch and gradient-space losses (paper 000 sec. 3)"),
    "spsr-p": ("spsr-p-2", "spsr_p", "SPSR-P: structure loss of an NSE pre-trained by contrastive prediction"),
    "spsr-j": ("spsr-j", "spsr_j", "SPSR-J: structure loss of an NSE pre-trained by jigsaw puzzles"),
    "ugsr": ("ugsr", "ugsr", "ugsr: gradient branch, U-Net critic (paper 002)"),
    "gpsr": ("gpsr-2", "gpsr", "GPSR: multi-scale gradient branch and the GG loss (paper 003)"),
    "pcl": ("pcl-3", "pcl", "PCL on EDSR-baseline: contrastive loss with sharpened positives, blurred negatives"),
}
SKIPPED_SETTINGS = ("data.train", "data.num_workers", "checkpoint.", "runtime.", "model.init", "structure.nse")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and not key.endswith("_options"):  # options dicts are one setting
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_changed(config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings that differ from its method's paper preset (the --set values, in effect)."""
    preset = json.loads(json.dumps(resolve_train_config(config["method"]).as_dict(), default=str))
    ours, theirs = _flat(config), _flat(preset)
    return {
        key: value
        for key, value in ours.items()
        if theirs.get(key) != value and not any(key.startswith(skip) for skip in SKIPPED_SETTINGS)
    }


def hardware() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or "unknown"
    return f"CPU ({cpu}), {os.cpu_count()} cores; one thread per run, two or three runs at a time"


def _run_record(folder: Path) -> dict[str, Any]:
    result = json.loads((folder / "result.json").read_text())
    config = result["config"]
    return {
        "iterations": result["iterations"],
        "wall_time_s": result.get("wall_time_s"),
        "batch_size": config["data"]["batch_size"],
        "lr_patch_size": config["data"]["lr_patch_size"],
        "config": config,
    }


def pack(runs: Path) -> None:
    BUNDLED_FOLDER.mkdir(exist_ok=True)
    machine = hardware()
    for name, (run, step, about) in BUNDLE.items():
        weights = runs / run / "final.safetensors"
        if not weights.is_file():
            print(f"{name}: no finished run in {runs / run}, skipped")
            continue
        network, card = load_network_with_card(weights)
        record = _run_record(runs / run)
        config = record.pop("config")
        training: dict[str, Any] = {
            "step": f"bash scripts/train_bundled_models.sh {step}",
            "iterations": record["iterations"],
            "batch_size": record["batch_size"],
            "lr_patch_size": record["lr_patch_size"],
            "settings_changed_from_preset": settings_changed(config),
            "hardware": machine,
            "wall_time_s": record["wall_time_s"],
            "weights": "float16 (trained in float32)",
            "parameters": count_parameters(network),
        }
        if config["model"].get("init"):
            init_run = Path(config["model"]["init"]).parent
            init_record = _run_record(init_run)
            training["init"] = init_run.name
            training["init_run"] = {k: init_record[k] for k in ("iterations", "batch_size", "wall_time_s")}
        nse = config.get("structure", {}).get("nse")
        if nse and config["losses"].get("structure_adversarial", 0) + config["losses"].get("structure_pixel", 0):
            nse_run = _run_record(Path(nse).parent)
            nse_config = nse_run.pop("config")
            training["nse"] = {
                "step": f"bash scripts/train_bundled_models.sh nse_{nse_config['pretext']['task']}",
                "task": nse_config["pretext"]["task"],
                **{k: nse_run[k] for k in ("iterations", "batch_size", "wall_time_s")},
                "hr_patch_size": nse_config["pretext"].get("patch_size"),
            }
        inactive = {}
        preset_losses = resolve_train_config(config["method"]).losses
        if config["losses"].get("perceptual", 0) == 0 and preset_losses.perceptual:
            inactive["perceptual"] = f"off (losses.perceptual=0): {NO_IMAGENET}"
            if config["losses"]["pixel"] != preset_losses.pixel:
                inactive["perceptual"] += (
                    f"; L1 takes weight {config['losses']['pixel']:g} (paper: {preset_losses.pixel:g}) to anchor the "
                    "content in its place"
                )
            if config["losses"].get("structure_pixel", 0) != preset_losses.structure_pixel:
                inactive["perceptual"] += (
                    f", and the structure-space L1 {config['losses']['structure_pixel']:g} "
                    f"(paper: {preset_losses.structure_pixel:g})"
                )
        training["inactive_losses"] = inactive
        bundled = ModelCard(
            architecture=card.architecture,
            config=card.config,
            scale=card.scale,
            method=card.method,
            training_data="BSD68 (68 photographs) + SunHays80 (80 photographs), shared/datasets/train",
            losses=card.losses,
            source=f"trained by srtk {__version__} (scripts/train_bundled_models.sh)",
            notes=f"{about}. Compact and briefly trained on a CPU: see MODEL_ZOO.md for how it compares with the "
            "paper's full-scale model.",
            training=training,
        )
        target = BUNDLED_FOLDER / f"{name}.safetensors"
        if same_weights(target, network):  # safetensors orders its header at random: keep the committed bytes
            write_json(card_path(target), bundled.as_dict())
        else:
            save_model(target, network, bundled, dtype=torch.float16)
        size = (BUNDLED_FOLDER / f"{name}.safetensors").stat().st_size / 1e6
        print(f"{name}: {record['iterations']} it, {count_parameters(network) / 1e6:.2f} M parameters, {size:.1f} MB")


def same_weights(path: Path, network: torch.nn.Module) -> bool:
    """Whether `path` already holds `network`'s weights in float16 (the SR cache is keyed by the file's hash)."""
    if not path.is_file():
        return False
    old = load_file(path)
    new = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in network.state_dict().items()}
    return old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)


def urban_subset(full: bool) -> str:
    """The Urban100 to measure on: the registry name, or a folder of links to its first URBAN_SUBSET images."""
    if full:
        return "urban100"
    folder = ROOT / "runs" / f"Urban100-first{URBAN_SUBSET}"
    folder.mkdir(parents=True, exist_ok=True)
    for image in sorted((SHARED / "datasets" / "benchmark" / "Urban100").glob("*.png"))[:URBAN_SUBSET]:
        if not (folder / image.name).exists():
            (folder / image.name).symlink_to(image)
    return str(folder)


def compare(models: list[str], out: Path, *, full: bool = False) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "srtk", "compare",
        "--models", ",".join(["bicubic", *models]),
        "--datasets", ",".join([*DATASETS[:2], urban_subset(full)]),
        "--data-root", str(SHARED / "datasets" / "benchmark"),
        "--metrics", ",".join(METRICS),
        "--cache", str(ROOT / "runs" / "zoo-cache"),
        "--report-images", "3",  # the report's crops of every model take ~45 s per Urban100 image on 2 cores
        "--device", "cpu",
        "-o", str(out),
    ]  # fmt: skip
    print(" ".join(command[2:]))
    subprocess.run(command, check=True)
    return json.loads((out / "table.json").read_text())


def cpu_seconds(name: str, threads: int = 2) -> float:
    """Best of 3 forward passes on a 256x256 input, `threads` CPU threads (eager PyTorch)."""
    torch.set_num_threads(threads)
    model, _ = load_model_with_card(name)
    x = torch.rand(1, 3, 256, 256)
    times = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return min(times)


def measure(out: Path, only: list[str] | None, *, full: bool = False) -> None:
    names = only or list(bundled_models())
    table = compare(names, out, full=full)
    if only:
        return
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, rows in table["tables"].items():
        for row in rows:
            values = {key: cell["value"] for key, cell in row["metrics"].items()}
            metrics.setdefault(row["model"], {})[dataset.lower().replace(f"-first{URBAN_SUBSET}", "")] = {
                **values,
                **({"images": URBAN_SUBSET} if "first" in dataset.lower() else {}),
            }
    for name in names:
        path = bundled_models()[name]
        card = read_card(path).as_dict()
        card["metrics"] = {**metrics[name], "speed": {"cpu_256x256_s": round(cpu_seconds(name), 2), "threads": 2}}
        write_json(card_path(path), card)
    mark_previews(metrics)
    images = ROOT / "docs" / "images"
    shutil.copyfile(out / "perception_distortion.png", images / "zoo-perception-distortion.png")
    write_model_zoo(metrics["bicubic"], table)


def mark_previews(metrics: dict[str, dict[str, dict[str, float]]]) -> None:
    """Mark in its card every model below its bar on Set5 (it then warns when loaded). PSNR-oriented: 0.3 dB over
    bicubic with a NIQE no worse than bicubic's (no artifacts bought with the PSNR); perceptual: a NIQE under both
    bicubic's and the best PSNR model's."""
    cards = {name: read_card(path) for name, path in bundled_models().items()}
    base = metrics["bicubic"]["set5"]
    psnr_niqe = min(metrics[n]["set5"]["niqe"] for n, card in cards.items() if not is_perceptual_method(card.method))
    for name, card in cards.items():
        ours, why = metrics[name]["set5"], ""
        if is_perceptual_method(card.method) and ours["niqe"] >= min(base["niqe"], psnr_niqe):
            why = (
                f"NIQE {ours['niqe']:.2f}; the bar: under bicubic's {base['niqe']:.2f} and psnr models' {psnr_niqe:.2f}"
            )
        elif not is_perceptual_method(card.method) and ours["psnr_y"] < base["psnr_y"] + 0.3:
            why = f"PSNR-Y {ours['psnr_y']:.2f} dB, bicubic {base['psnr_y']:.2f} dB"
        elif not is_perceptual_method(card.method) and ours["niqe"] > base["niqe"]:
            why = f"PSNR-Y {ours['psnr_y']:.2f} dB but NIQE {ours['niqe']:.2f} over bicubic's {base['niqe']:.2f}"
        data = card.as_dict()
        data["training"].pop("preview", None)
        if why:
            data["training"]["preview"] = f"a CPU-scale preview, below its bar on Set5 ({why})"
        write_json(card_path(bundled_models()[name]), data)


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def write_model_zoo(bicubic: dict[str, dict[str, float]], table: dict[str, Any]) -> None:
    paper = json.loads((ROOT / "scripts" / "paper_numbers.json").read_text())["models"]
    cards = bundled_cards()
    lines = [ZOO_HEADER.strip(), ""]
    good = [n for n, c in cards.items() if not c.training.get("preview")]
    gains = ", ".join(
        f"{n} {c.metrics['set5']['psnr_y'] - bicubic['set5']['psnr_y']:+.2f} dB" for n, c in cards.items() if n in good
    )
    lines += [
        "## Verdict",
        "",
        f"- **Above bicubic, ready to use**: {gains} (Set5 PSNR-Y; Set14 and Urban100 below).",
        "- **Previews** (below their bar; they warn when loaded and `srtk models` marks them): "
        + "; ".join(f"{n}: {c.training['preview']}" for n, c in cards.items() if n not in good)
        + ". The perceptual methods' GAN and structure stages need the papers' scale (a GPU); the last section "
        "says what was cut.",
        "",
    ]
    for dataset in DATASETS:
        title = {"set5": "Set5", "set14": "Set14", "urban100": "Urban100"}[dataset]
        if bicubic[dataset].get("images"):
            title += f" (its first {bicubic[dataset]['images']} images; the papers' columns are over all 100)"
        lines += [f"### {title}", ""]
        lines += [
            "| model | PSNR-Y | SSIM-Y | NIQE | PSNR vs bicubic | paper PSNR / SSIM | paper LPIPS / PI |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ["bicubic", *cards]:
            ours = bicubic[dataset] if name == "bicubic" else cards[name].metrics[dataset]
            theirs = paper.get(name, {}).get("numbers", {}).get(dataset, {})
            gain = ours["psnr_y"] - bicubic[dataset]["psnr_y"]
            lines.append(
                f"| {name} | {_fmt(ours['psnr_y'], 2)} | {_fmt(ours['ssim_y'], 4)} | {_fmt(ours['niqe'], 2)} | "
                f"{'' if name == 'bicubic' else f'{gain:+.2f} dB'} | "
                f"{_fmt(theirs.get('PSNR'), 2)} / {_fmt(theirs.get('SSIM'), 4)} | "
                f"{_fmt(theirs.get('LPIPS'), 4)} / {_fmt(theirs.get('PI'), 2)} |"
            )
        lines.append("")
    lines += ["## How each was trained", "", TRAINING_HEADER.strip(), ""]
    lines += [
        "| model | method | network | parameters | MB | iterations | batch x LR patch | init | wall time | "
        "CPU s (256x256) | loss terms |",
        "|---|---|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for name, card in cards.items():
        t = card.training
        size = bundled_models()[name].stat().st_size / 1e6
        network = card.architecture + (f"({card.config['backbone']})" if card.config.get("backbone") else "")
        wall = f"{t['wall_time_s'] / 60:.0f} min" if t.get("wall_time_s") else "-"
        if t.get("init") and (t["init"] == name or t["init"] not in cards):  # a run of its own: gpsr, ugsr
            stage = "first period" if t["init"] == name else "L1 pre-training"
            wall += f" + {stage} {t['init_run']['iterations']} it, {t['init_run']['wall_time_s'] / 60:.0f} min"
        if t.get("nse"):
            wall += f" + NSE {t['nse']['wall_time_s'] / 60:.0f} min"
        losses = ", ".join(f"{k} {v:g}" for k, v in card.losses.items())
        init = "scratch" if t.get("init", name) == name else t["init"]
        lines.append(
            f"| {name} | {card.method} | {network} | {t['parameters'] / 1e6:.2f} M | {size:.1f} | {t['iterations']} | "
            f"{t['batch_size']} x {t['lr_patch_size']} px | {init} | {wall} | "
            f"{card.metrics['speed']['cpu_256x256_s']:.1f} | {losses} |"
        )
    lines += ["", "Papers' training, for comparison:", ""]
    for name in cards:
        if name in paper and paper[name].get("training"):
            lines.append(f"- **{name}** ({paper[name]['source']}): {paper[name]['training']}")
    iterations = ", ".join(
        f"{name} {c.training['init_run']['iterations']} + {c.training['iterations']}"
        if c.training.get("init") == name
        else f"{name} {c.training['iterations']}"
        for name, c in cards.items()
    )
    nse = sorted({card.training["nse"]["iterations"] for card in cards.values() if "nse" in card.training})
    lines += ["", SCALE_NOTE.strip().format(iterations=iterations, nse_iterations="/".join(map(str, nse))), ""]
    (ROOT / "MODEL_ZOO.md").write_text("\n".join(lines))
    print(f"MODEL_ZOO.md written ({len(cards)} models)")


ZOO_HEADER = """
# Model zoo: the models bundled with srtk

`srtk models` lists them; `--model NAME` uses one anywhere a model is expected (`srtk upscale photo.png --model
spsr-p -o out/`, `srtk evaluate`, `srtk compare`, `srtk export`, `srtk info`, `srtk.load_model("spsr-p")`), with no
download. They are compact x4 models trained by srtk's own CLI on a CPU (`scripts/train_bundled_models.sh`, packed
and measured by `scripts/bundle_models.py`). They are far smaller and far shorter-trained than the papers' models:
use them to try srtk, as initialisations, and as baselines for your own runs, not as reproductions of the
papers' tables (the last section says by how much they differ).

The numbers below were produced by `srtk compare` on the shipped weights under the papers' protocol (HR modcropped,
LR by MATLAB bicubic, PSNR/SSIM on Y with a 4-pixel border, NIQE on Y; lower NIQE is more natural-looking):

    python scripts/bundle_models.py measure --full   # runs: srtk compare --models bicubic,<bundled> --datasets
                                                    #   set5,set14,urban100 --metrics psnr_y,ssim_y,niqe
                                                    # (about an hour on 2 cores; without --full: Urban100's
                                                    # first 20 images, a quick check)

![perception-distortion plane of the bundled models](docs/images/zoo-perception-distortion.png)

The "paper" columns are the full-scale published numbers (`scripts/paper_numbers.json`, with the table each comes
from). Papers 000-002 do not say on which channel their SSIM is computed and their values do not match Y-channel
SSIM (their bicubic Urban100 SSIM is 0.90, srtk's Y-channel 0.66): compare their SSIM only with each other. They
report LPIPS and PI, not NIQE; LPIPS needs ImageNet AlexNet weights that are not on the machines that measured
these models, so srtk's columns are PSNR, SSIM and NIQE.
"""

TRAINING_HEADER = """
All on `shared/datasets/train` (BSD68 + SunHays80: 148 photographs), x4, on a 2-core CPU. Every card
(`srtk models --json`) holds the full record: the settings changed from the method's paper preset, the NSE run of
spsr-p/j, hardware and wall time, and the loss terms left out and why.
"""

SCALE_NOTE = """
## The difference in scale, honestly

- **Data**: 148 photographs instead of DIV2K's 800 2K images (GPSR: 900; ugsr adds MoA augmentation on DIV2K).
- **Iterations**: {iterations}, where the papers train 4e5-1e6 iterations (SPSR: 15 patches per batch; here
  8-16). The GAN and structure stages start from the PSNR model as the papers' do, but they have barely begun to
  trade PSNR for texture: expect a smaller NIQE gain and a smaller PSNR loss than the papers'.
- **Warm-ups**: spsr-g, spsr-p and spsr-j start from a 600-iteration (150 + 450) L1 training of the whole SPSR
  generator initialised from psnr-rrdb (`spsr_psnr` in the script): its gradient branch and fusion block are not in
  the PSNR model, and a 100-iteration GAN stage cannot train them from noise, where the papers' 4e5 iterations can. ugsr
  starts from its own L1 pre-training, as paper 002 does.
- **Width and depth**: RRDBNet with 6 blocks of 32 features (growth 16) instead of 23 blocks of 64 (growth 32);
  critics of 32 features instead of 64; GPSR with n = 8 features, 2 modules and 2 residual blocks instead of its
  8.18 M-parameter x4 model. EDSR-baseline and PCL's EDSR-baseline have the papers' size.
- **Perceptual weights**: no VGG19 perceptual loss (esrgan, spsr-g, spsr-p, spsr-j) and no LPIPS loss (ugsr):
  ImageNet weights are not on the training machine. That term anchors the content in the papers (weight 1, L1
  only 0.01); without it the adversarial and structure terms broke the image within 75 iterations (spsr-p's L1 to
  HR rose from 0.05 to 0.33), so L1 takes weight 1 in these models. spsr-p's structure-space L1 (on its NSE's
  features) takes part of the VGG loss's role too: 1e-5 instead of the paper's 1e-7 (about a sixth of the L1);
  after 100 iterations it gave Set5 28.60 dB / NIQE 8.26 where 1e-7 gave 27.48 / 8.47 (spsr-j's jigsaw NSE did
  worse with it: 24.22 / 8.91, so spsr-j keeps 1e-7).
- **GAN stages**: 100 iterations with the generator at 2e-5 (papers: 1e-4 over 4e5 iterations). At 1e-4 the
  first GAN iterations shifted colours and lost detail (esrgan after 200: Set5 PSNR-Y 29.29 -> 27.68 dB, NIQE
  8.40 -> 8.61; spsr-p after 100: 22.06 dB); at 2e-5 they move less but still have not reached the phase where
  the critics add natural texture. Four more settings were measured from psnr-rrdb (esrgan, batch 8, Set5
  PSNR-Y / NIQE; psnr-rrdb: 29.29 / 8.40), and each got worse with every iteration:
  - a larger adversarial share: pixel 0.1 with the generator at 5e-5 gave 25.34 / 9.18 after 100 iterations and
    20.66 / 9.79 after 200; pixel 1 with adversarial 0.05 gave 23.94 / 9.51, then 21.94 / 9.45 with a green cast;
  - 100 critic-only iterations first (`optim.critic_warmup=100`, then the settings above): 28.56 / 8.51 after 50
    generator steps, 26.00 / 10.05 after 150, with striped ringing along edges;
  - the paper's 1e-4 with an average of the generator (EMA 0.999): the raw generator gave 26.05 / 9.63 after 250
    iterations and 26.02 / 13.18 after 500.

  That is the early GAN phase that the papers' 4e5 iterations leave behind, and a 2-core CPU does not get past
  it (about 2 s per esrgan step, 3-8 s for SPSR and ugsr). **The perceptual models are therefore previews**: their
  NIQE is not below bicubic's, they warn when loaded, and `srtk models` marks them. They need the papers' scale (a
  GPU: `DEVICE=cuda bash scripts/train_bundled_models.sh` with the iterations and batch sizes raised).
- **NSEs** (spsr-p, spsr-j): pre-trained by `srtk pretrain-nse` on the same photographs at 128-132 px patches
  and batch 8 for {nse_iterations} iterations, where paper 000 sec. 5.1 uses 420 px patches and batch 48.
- **PCL**: fine-tunes psnr-edsr with the contrastive loss at alpha 0.01 (Table VII's smallest; the paper's 0.1
  grew a 4-pixel grid within 300 iterations, NIQE 15.7), after 100 iterations of E_D alone; paper 004 trains
  from scratch, its authors' release fine-tunes.
- **GPSR**: 600 iterations from scratch, then a second cosine period of 1800 from there (600 alone left it 1.1 dB
  under bicubic on Set5).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("pack", "measure"))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bundled")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "zoo-compare")
    parser.add_argument("--models", help="measure: only these (fills the SR cache)")
    parser.add_argument("--full", action="store_true", help=f"measure: all of Urban100, not its first {URBAN_SUBSET}")
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.runs)
    else:
        measure(args.out, args.models.split(",") if args.models else None, full=args.full)


if __name__ == "__main__":
    main()
