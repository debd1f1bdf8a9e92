"""`srtk compare`: bicubic against a tiny model trained by the engine, on crops of the shared photographs."""

import csv
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from srtk.config import HIGHER_IS_BETTER, CompareConfig, EvalConfig
from srtk.data.io import read_image, write_image
from srtk.evaluate import ImageScorer, run_evaluation
from srtk.models.checkpoint import read_card
from srtk.studies import compare
from srtk.studies.compare import CropBox, disagreement_crops, rank_rows, run_comparison
from tests.conftest import shared_path
from tests.test_cli import run_cli
from tests.train import image_folder, tiny_overrides

# Crops of Set5 photographs: 208x120 HR holds the two textured 96x96 blocks NIQE needs after the 4-pixel border.
CROPS = {"baby": (150, 40), "butterfly": (40, 20), "head": (60, 30)}  # name -> (top, left)
CROP_HEIGHT, CROP_WIDTH = 120, 208
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class Comparison:
    first: compare.ComparisonResult
    second: compare.ComparisonResult
    forwards: list[int]  # model forward passes during the first and the second run
    scored: list[int]  # images scored by the protocol (ImageScorer.score) during each run
    data: Path
    model: Path


def _photographs(folder: Path) -> Path:
    for name, (top, left) in CROPS.items():
        img = read_image(shared_path("datasets", "benchmark", "Set5", f"{name}.png"))
        write_image(folder / f"{name}.png", img[:, top : top + CROP_HEIGHT, left : left + CROP_WIDTH])
    return folder


def _train_tiny_model(root: Path) -> Path:
    from srtk.presets import resolve_train_config
    from srtk.train.engine import run_training

    overrides = tiny_overrides(
        "psnr",
        image_folder(root / "train", 4),
        root / "run",
        **{
            "model.backbone": "edsr",
            "model.backbone_options": {"num_features": 8, "num_blocks": 2},
            "optim.iterations": 6,
            "checkpoint.every": 6,
            "checkpoint.validate_every": 6,
        },
    )
    model = run_training(resolve_train_config("psnr", overrides=overrides)).model
    assert model is not None
    return model


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("compare")
    data, model = _photographs(root / "photos"), _train_tiny_model(root)
    forwards, scored = [0], [0]
    load, score = compare.load_model_with_card, ImageScorer.score

    def counting_load(spec: str, *, scale: int):  # every forward pass of every compared model is counted
        network, card = load(spec, scale=scale)
        network.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
        return network, card

    def counting_score(scorer: ImageScorer, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        scored[0] += 1
        return score(scorer, sr, hr)

    cfg = CompareConfig(
        models=("bicubic", f"tiny={model}"),
        datasets=(str(data),),
        out=root / "out",
        metrics=("psnr_y", "ssim_y", "niqe", "lpips"),
        allow_random_lpips=True,  # no hub weights in tests: the LPIPS column and plot with a random trunk
        device="cpu",
        crops=2,
        crop_size=48,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare, "load_model_with_card", counting_load)
        patch.setattr(ImageScorer, "score", counting_score)
        first = run_comparison(cfg)
        counts, scores = [forwards[0]], [scored[0]]
        card = json.loads(model.with_suffix(".json").read_text())  # measured metrics written into its card
        model.with_suffix(".json").write_text(json.dumps({**card, "metrics": {"photos": {"psnr_y": 30.0}}}))
        # The cache holds SR images: another folder with other metrics and no figures finds every one of them.
        again = replace(
            cfg, out=root / "again", cache=cfg.cache_dir, metrics=("psnr_y", "ssim_y", "niqe"), figures=False
        )
        second = run_comparison(again)
        counts.append(forwards[0] - counts[0])
        scores.append(scored[0] - scores[0])
    return Comparison(first, second, counts, scores, data, model)


@pytest.mark.slow
def test_cache_hit_runs_no_model(comparison: Comparison) -> None:
    # the second run also follows a card that gained metrics: only the weights and the network key the cache
    assert comparison.forwards == [2 * len(CROPS), 0]  # one forward per model and image, then none
    assert comparison.scored == [2 * len(CROPS), 0]  # the metrics are cached beside the SR images too
    assert comparison.first.sr_computed == {"bicubic": 3, "tiny": 3}
    assert comparison.second.sr_computed == {"bicubic": 0, "tiny": 0}
    assert comparison.second.sr_cached == {"bicubic": 3, "tiny": 3}
    for label, images in comparison.first.datasets["photos"].items():  # the cached PNGs are the SR exactly
        for name, values in images.items():
            assert comparison.second.datasets["photos"][label][name] == {
                k: values[k] for k in ("psnr_y", "ssim_y", "niqe")
            }


@pytest.mark.slow
def test_scores_are_those_of_srtk_evaluate(comparison: Comparison) -> None:
    scored = comparison.first.datasets["photos"]
    for label, model in (("bicubic", "bicubic"), ("tiny", str(comparison.model))):
        cfg = EvalConfig(model=model, datasets=(str(comparison.data),), metrics=("psnr_y", "ssim_y"), device="cpu")
        reference = run_evaluation(cfg).datasets["photos"].images
        for name, values in reference.items():
            for key, value in values.items():
                assert scored[label][name][key] == pytest.approx(value, abs=1e-9), (label, name, key)


@pytest.mark.slow
def test_table_marks_best_and_second_in_every_format(comparison: Comparison) -> None:
    result, out = comparison.first, comparison.first.config.out
    table = json.loads((out / "table.json").read_text())
    images = table["datasets"]["photos"]["images"]
    means = {
        label: {k: sum(v[k] for v in per.values()) / len(per) for k in result.keys} for label, per in images.items()
    }
    rows = table["tables"]["photos"]
    assert [r["model"] for r in rows] == sorted(means, key=lambda m: -means[m]["psnr_y"])  # ranked by PSNR
    csv_rows = list(csv.DictReader((out / "table.csv").open()))
    markdown = (out / "table.md").read_text()
    for key in ("psnr_y", "ssim_y", "niqe", "lpips"):
        pick = max if HIGHER_IS_BETTER[key] else min
        best = pick(means, key=lambda m, key=key: means[m][key])
        other = next(m for m in means if m != best)
        flagged = {r["model"]: r["metrics"][key] for r in rows}
        assert flagged[best]["best"] and flagged[best]["rank"] == 1
        assert flagged[other]["second"] and not flagged[other]["best"]
        assert flagged[best]["value"] == pytest.approx(means[best][key])
        assert {r["model"]: r[f"{key}_flag"] for r in csv_rows} == {best: "best", other: "second"}
        text = f"{means[best][key]:.4f}" if key in ("ssim_y", "lpips") else f"{means[best][key]:.2f}"
        assert f"**{text}**" in markdown
    assert table["cache"]["computed"] == {"bicubic": 3, "tiny": 3}
    assert [m["label"] for m in table["models"]] == ["bicubic", "tiny"]
    assert table["models"][1]["hash"] == compare.model_key(comparison.model, read_card(comparison.model))


@pytest.mark.slow
def test_plot_figures_and_report_are_written(comparison: Comparison) -> None:
    result = comparison.first
    plot = read_image(result.files["plot"])
    assert plot.shape[1] > 300 and plot.std() > 0.05  # two panels (NIQE, LPIPS) with points, not a blank canvas
    for name in CROPS:
        grid = read_image(result.config.out / "figures" / "photos" / f"{name}.png")
        assert grid.shape[2] > grid.shape[1] > 200  # overview + 3 columns of crops, 4 rows (2 crops x image, M(I))
    page = result.files["report"].read_text()
    assert "http://" not in page and "https://" not in page  # no CDN: it opens offline
    for view in result.views:
        assert len(view.crops) == 2
        for asset in view.assets.values():
            assert (result.files["report"].parent / asset).is_file()


def test_crops_go_where_the_gradient_maps_disagree() -> None:
    calm = torch.zeros(64, 96)
    busy = calm.clone()
    busy[36:44, 60:68] = 1.0  # the models differ only here
    (box,) = disagreement_crops([calm, busy], count=1, size=16, scale=4)
    assert box.size == 16 and box.top % 4 == 0 and box.left % 4 == 0
    assert box.top <= 36 and box.top + 16 >= 44 and box.left <= 60 and box.left + 16 >= 68
    boxes = disagreement_crops([calm, busy], count=3, size=16, scale=4)
    for a, b in zip(boxes, boxes[1:], strict=False):  # later crops never overlap an earlier one
        assert abs(a.top - b.top) >= 16 or abs(a.left - b.left) >= 16
    lr = torch.arange(256.0).view(1, 16, 16)  # an HR window of 16 at (8, 4) is the LR window of 4 at (2, 1)
    assert torch.equal(CropBox(8, 4, 16).of(lr, scale=4), lr[:, 2:6, 1:5])


def test_rank_rows_follow_each_metrics_direction_and_share_ties() -> None:
    means = {
        "a": {"psnr_y": 30.0, "niqe": 4.0},
        "b": {"psnr_y": 31.0, "niqe": 6.0},
        "c": {"psnr_y": 30.0, "niqe": 5.0},
    }
    rows = {r["model"]: r["metrics"] for r in rank_rows(means, ("psnr_y", "niqe"), "psnr_y")}
    assert [r["model"] for r in rank_rows(means, ("psnr_y", "niqe"), "psnr_y")] == ["b", "a", "c"]
    assert rows["b"]["psnr_y"]["best"] and rows["a"]["psnr_y"]["second"] and rows["c"]["psnr_y"]["second"]
    assert rows["a"]["niqe"]["best"] and rows["c"]["niqe"]["second"] and rows["b"]["niqe"]["rank"] == 3


def test_cli_refuses_a_missing_model_or_a_file_as_out_before_any_work(monkeypatch, capsys, tmp_path):
    data = image_folder(tmp_path / "data", 1)
    out = tmp_path / "out"
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "compare",
        "--models",
        "bicubic,missing.safetensors",
        "--datasets",
        str(data),
        "--out",
        str(out),
    )
    assert code == 1 and err.count("\n") == 1 and "missing.safetensors" in err and not out.exists()
    (tmp_path / "file").write_text("")
    code, _, err = run_cli(monkeypatch, capsys, "compare", "--datasets", str(data), "--out", str(tmp_path / "file"))
    assert code == 1 and err.count("\n") == 1 and "is not a folder" in err


@pytest.mark.slow
def test_cli_compares_and_says_where_results_went(monkeypatch, capsys, comparison: Comparison, tmp_path) -> None:
    cache = comparison.first.config.cache_dir  # the module's cache: this run makes no SR
    models = f"bicubic,tiny={comparison.model}"
    args = [
        "--models",
        models,
        "--datasets",
        str(comparison.data),
        "--out",
        str(tmp_path / "cli"),
        "--cache",
        str(cache),
    ]
    args += [
        "--metrics",
        "psnr_y,ssim_y",
        "--device",
        "cpu",
        "--crops",
        "1",
        "--crop-size",
        "48",
        "--set",
        "figures=false",
    ]
    code, out, _ = run_cli(monkeypatch, capsys, "compare", *args)
    assert code == 0
    assert "SR images: 0 computed, 6 from the cache" in out
    table = json.loads((tmp_path / "cli" / "table.json").read_text())
    ranked = [row["model"] for row in table["tables"]["photos"]]
    assert out.index(f"│ {ranked[0]} ") < out.index(f"│ {ranked[1]} ")  # the printed table is in rank order
    for name in ("table_json", "table_md", "table_csv", "report"):
        assert f"{name:>10}: " in out
    assert not (tmp_path / "cli" / "figures").exists() and (tmp_path / "cli" / "report" / "index.html").is_file()


# Appended to a copy of the report: records console errors and failed loads from the first moment, then, once the
# page has loaded, writes what the test checks into the DOM for --dump-dom to print.
PROBE_HEAD = """<script>
window.__errors = [];
var __consoleError = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
};
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && (e.target.src || e.target.href))));
}, true);
</script>"""
PROBE_TAIL = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return { src: img.getAttribute("src"), width: img.naturalWidth, complete: img.complete };
  });
  var result = {
    images: images,
    tables: document.querySelectorAll("table.metrics").length,
    best: Array.prototype.map.call(document.querySelectorAll("td.best"), function (td) { return td.textContent; }),
    plot: !!document.querySelector("#plot img"),
    cards: document.querySelectorAll(".card").length,
    errors: window.__errors
  };
  var pre = document.createElement("pre");
  pre.id = "srtk-probe";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture()
def chromium() -> str:
    """The headless browser: skipped outside CI when absent, a failure under CI=true (before the comparison runs)."""
    found = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    if found is None:
        reason = "chromium is not installed (apt-get install chromium): the report's browser test needs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_report_loads_in_headless_chromium(chromium: str, comparison: Comparison, tmp_path: Path) -> None:
    browser = chromium
    report = comparison.first.files["report"]
    page = report.read_text()
    probe = report.with_name("probe.html")  # beside the report: the same relative asset paths
    probe.write_text(page.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1))
    try:
        dom = _headless(browser, "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert 'id="srtk-probe"' in dom.stdout, dom.stderr[-2000:]
    text = dom.stdout.split('id="srtk-probe">', 1)[1].split("</pre>", 1)[0]
    result = json.loads(text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert result["errors"] == []
    views = comparison.first.views
    # Per image: overview, LR, HR, M(HR), and each of the 2 models with its M(I); plus the plot.
    assert len(result["images"]) == len(views) * (4 + 2 * 2) + 1
    assert all(img["complete"] and img["width"] > 0 for img in result["images"]), result["images"]
    assert result["tables"] == 1 and result["plot"] and result["cards"] == len(CROPS)
    best_psnr = max(row["metrics"]["psnr_y"]["value"] for row in comparison.first.ranked()["photos"])
    assert f"{best_psnr:.2f}" in result["best"]
    shot = tmp_path / "report.png"
    _headless(browser, f"--screenshot={shot}", "--window-size=1400,1600", report.as_uri())
    pixels = read_image(shot)
    assert pixels.shape == (3, 1600, 1400) and pixels.std() > 0.1  # a rendered page, not a blank one


def test_model_key_follows_weights_and_network_not_the_card_record(tmp_path: Path) -> None:
    from srtk.models.checkpoint import ModelCard, save_model
    from srtk.models.registry import build_model

    network = build_model("edsr", scale=4, num_features=8, num_blocks=1)
    card = ModelCard(architecture="edsr", config={"scale": 4, "num_features": 8, "num_blocks": 1}, scale=4)
    path = save_model(tmp_path / "m.safetensors", network, card)
    key = compare.model_key(path, card)
    assert compare.model_key(path, replace(card, metrics={"set5": {"psnr_y": 30.0}}, training={"step": "x"})) == key
    assert compare.model_key(path, replace(card, config={**card.config, "num_blocks": 2})) != key
    with torch.no_grad():
        next(network.parameters()).add_(1.0)
    save_model(path, network, card)
    assert compare.model_key(path, card) != key
