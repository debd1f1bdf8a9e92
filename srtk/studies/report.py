"""The static HTML report of `srtk compare`: one page, its assets beside it, inline CSS and JS, no network.

Per image: LR, HR and every model's SR with its gradient map M(I) (paper 000 eq. 2) in square viewports that zoom
and pan together (wheel, drag; double-click resets), starting on the crops where the models' gradient maps
disagree most; the ranked metric tables (best in bold, second best underlined, as the papers' tables); the
perception-distortion plot. It opens from the file system (file://), in any browser, offline.
"""

import html
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from srtk.config import HIGHER_IS_BETTER
from srtk.data.io import atomic_path
from srtk.evaluate import PROTOCOL
from srtk.gradmap import DISPLAY_PERCENTILE
from srtk.version import __version__

if TYPE_CHECKING:
    from srtk.studies.compare import ComparisonResult, ImageView

VIEWPORT_PX = 224  # side of one zoomable panel on the page
CROP_COLORS = ("#e4572e", "#17bebb", "#ffc914", "#76b041", "#a06cd5")  # the same colours as the figure grids

STYLE = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde2ea; --bg: #f6f7f9; --card: #fff; --accent: #2f6fde; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #c3cad6; font-size: 13px; }
main { padding: 20px 32px 40px; max-width: 1800px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin-bottom: 20px; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 0 0 8px; }
.tables { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.summary { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
.summary > .scores { flex: 0 1 640px; min-width: 320px; }
.summary > .plot { flex: 1 1 520px; }
table.metrics { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.metrics th, table.metrics td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
table.metrics thead th { border-bottom: 2px solid var(--fg); font-weight: 600; }
td.best { font-weight: 700; }
td.second { text-decoration: underline; text-underline-offset: 3px; }
.note { color: var(--muted); font-size: 12px; }
.plot img { width: 100%; max-width: 900px; height: auto; border: 1px solid var(--line); border-radius: 4px; }
nav.images { columns: 4 180px; font-size: 13px; }
nav.images a { color: var(--accent); text-decoration: none; }
.card { border-top: 1px solid var(--line); padding-top: 14px; margin-top: 14px; }
.card:first-of-type { border-top: 0; margin-top: 0; padding-top: 0; }
.card-head { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
.card-head h3 { margin: 0; }
.card-body { display: flex; gap: 16px; align-items: flex-start; }
.overview { position: relative; flex: 0 0 auto; width: 260px; }
.overview img { width: 100%; display: block; border-radius: 3px; }
.overview .box { position: absolute; border: 2px solid; cursor: pointer; }
button.crop { font: inherit; font-size: 12px; border: 1px solid var(--line); background: #fff; border-radius: 14px;
              padding: 3px 10px; cursor: pointer; }
button.crop.active { background: var(--fg); color: #fff; border-color: var(--fg); }
button.crop i { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 5px; }
.panels { display: flex; flex-wrap: wrap; gap: 10px; }
.panel { width: VIEWPORTpx; }
.panel .name { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel .values { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; height: 18px; }
.viewport { position: relative; width: VIEWPORTpx; height: VIEWPORTpx; overflow: hidden; background: #111;
            border-radius: 3px; cursor: grab; touch-action: none; margin-bottom: 4px; }
.viewport.dragging { cursor: grabbing; }
.viewport img { position: absolute; left: 0; top: 0; transform-origin: 0 0; image-rendering: pixelated;
                max-width: none; user-select: none; -webkit-user-drag: none; }
.viewport .tag { position: absolute; right: 4px; bottom: 3px; color: #fff; font-size: 11px;
                 text-shadow: 0 0 3px #000; pointer-events: none; }
""".replace("VIEWPORT", str(VIEWPORT_PX))

# Every viewport of a card shows the same window of the HR grid: {x, y, size} in HR pixels. An LR image is drawn
# `scale` times larger, so its pixels land under the HR pixels they were made from.
SCRIPT = """
(function () {
  "use strict";
  function setup(card) {
    var width = +card.dataset.width, height = +card.dataset.height;
    var crops = JSON.parse(card.dataset.crops);
    var ports = Array.prototype.slice.call(card.querySelectorAll(".viewport"));
    var buttons = Array.prototype.slice.call(card.querySelectorAll("button.crop"));
    var view = { x: 0, y: 0, size: Math.min(width, height) };
    function draw() {
      ports.forEach(function (port) {
        var img = port.querySelector("img"), k = port.clientWidth / view.size;
        img.style.width = (width * k) + "px";
        img.style.height = (height * k) + "px";
        img.style.transform = "translate(" + (-view.x * k) + "px," + (-view.y * k) + "px)";
        var tag = port.querySelector(".tag");
        if (tag) { tag.textContent = k.toFixed(1) + "\\u00d7"; }
      });
    }
    function show(index) {
      var c = crops[index];
      view = c ? { x: c.left, y: c.top, size: c.size } : { x: 0, y: 0, size: Math.max(width, height) };
      buttons.forEach(function (b) { b.classList.toggle("active", +b.dataset.crop === index); });
      draw();
    }
    function clampView() {
      view.size = Math.max(8, Math.min(view.size, Math.max(width, height)));
      view.x = Math.max(-view.size / 2, Math.min(view.x, width - view.size / 2));
      view.y = Math.max(-view.size / 2, Math.min(view.y, height - view.size / 2));
    }
    ports.forEach(function (port) {
      port.addEventListener("wheel", function (event) {
        event.preventDefault();
        var rect = port.getBoundingClientRect(), k = rect.width / view.size;
        var px = view.x + (event.clientX - rect.left) / k, py = view.y + (event.clientY - rect.top) / k;
        var factor = Math.exp(event.deltaY * 0.0015);
        view.size *= factor;
        view.x = px - (px - view.x) * factor;
        view.y = py - (py - view.y) * factor;
        clampView();
        buttons.forEach(function (b) { b.classList.remove("active"); });
        draw();
      }, { passive: false });
      port.addEventListener("pointerdown", function (event) {
        var start = { cx: event.clientX, cy: event.clientY, x: view.x, y: view.y };
        var k = port.clientWidth / view.size;
        port.setPointerCapture(event.pointerId);
        port.classList.add("dragging");
        function move(e) {
          view.x = start.x - (e.clientX - start.cx) / k;
          view.y = start.y - (e.clientY - start.cy) / k;
          clampView();
          draw();
        }
        function up() {
          port.classList.remove("dragging");
          port.removeEventListener("pointermove", move);
          port.removeEventListener("pointerup", up);
        }
        port.addEventListener("pointermove", move);
        port.addEventListener("pointerup", up);
      });
      port.addEventListener("dblclick", function () { show(crops.length ? 0 : -1); });
    });
    buttons.forEach(function (b) { b.addEventListener("click", function () { show(+b.dataset.crop); }); });
    Array.prototype.forEach.call(card.querySelectorAll(".overview .box"), function (box) {
      box.addEventListener("click", function () { show(+box.dataset.crop); });
    });
    show(crops.length ? 0 : -1);
  }
  Array.prototype.forEach.call(document.querySelectorAll(".card"), setup);
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _format(key: str, value: float) -> str:
    return f"{value:.4f}" if key in ("ssim_y", "lpips") else f"{value:.2f}"


def _tables(result: "ComparisonResult") -> str:
    parts = []
    for dataset, rows in result.ranked().items():
        count = len(next(iter(result.datasets[dataset].values())))
        head = "".join(f"<th>{_e(k)} {'&uarr;' if HIGHER_IS_BETTER[k] else '&darr;'}</th>" for k in result.keys)
        body = []
        for row in rows:
            cells = []
            for key in result.keys:
                cell = row["metrics"][key]
                cls = "best" if cell["best"] else "second" if cell["second"] else ""
                cells.append(f'<td class="{cls}">{_format(key, cell["value"])}</td>')
            body.append(f"<tr><td>{_e(row['model'])}</td>{''.join(cells)}</tr>")
        parts.append(
            f'<div><h3>{_e(dataset)} <span class="note">({count} images)</span></h3>'
            f'<table class="metrics"><thead><tr><th>model</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    return "".join(parts)


def _panel(name: str, image: str, grad: str | None, scale: int, values: str) -> str:
    ports = f'<div class="viewport"><img src="{_e(image)}" data-scale="{scale}" alt="{_e(name)}" draggable="false">'
    ports += '<span class="tag"></span></div>'
    if grad is not None:
        ports += (
            f'<div class="viewport"><img src="{_e(grad)}" data-scale="{scale}" alt="M(I) of {_e(name)}" '
            'draggable="false"></div>'
        )
    return (
        f'<div class="panel"><div class="name" title="{_e(name)}">{_e(name)}</div>'
        f'<div class="values">{_e(values)}</div>{ports}</div>'
    )


def _values(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    return "  ".join(f"{k.replace('_y', '')} {_format(k, metrics[k])}" for k in keys)


def _card(view: "ImageView", labels: list[str], keys: tuple[str, ...], scale: int, anchor: str) -> str:
    crops = [{"top": c.top, "left": c.left, "size": c.size} for c in view.crops]
    buttons = "".join(
        f'<button class="crop" data-crop="{i}"><i style="background:{CROP_COLORS[i % len(CROP_COLORS)]}"></i>'
        f"crop {i + 1}</button>"
        for i in range(len(crops))
    )
    buttons += '<button class="crop" data-crop="-1">whole image</button>'
    colors = [CROP_COLORS[i % len(CROP_COLORS)] for i in range(len(view.crops))]
    boxes = "".join(
        f'<div class="box" data-crop="{i}" title="crop {i + 1}" style="border-color:{colors[i]};'
        f"left:{100 * c.left / view.width:.3f}%;top:{100 * c.top / view.height:.3f}%;"
        f'width:{100 * c.size / view.width:.3f}%;height:{100 * c.size / view.height:.3f}%"></div>'
        for i, c in enumerate(view.crops)
    )
    panels = [
        _panel(f"LR (x{scale} nearest)", view.assets["lr"], None, scale, "input"),
        _panel("HR", view.assets["hr"], view.assets["hr_grad"], 1, "ground truth"),
    ]
    panels += [
        _panel(label, view.assets[label], view.assets[f"{label}_grad"], 1, _values(view.metrics[label], keys))
        for label in labels
    ]
    return (
        f'<div class="card" id="{_e(anchor)}" data-width="{view.width}" data-height="{view.height}" '
        f"data-crops='{_e(json.dumps(crops))}'>"
        f'<div class="card-head"><h3>{_e(view.dataset)} / {_e(view.name)}</h3>'
        f'<span class="note">{view.width}&times;{view.height}</span>{buttons}</div>'
        f'<div class="card-body"><div class="overview"><img src="{_e(view.assets["hr"])}" alt="overview">{boxes}</div>'
        f'<div class="panels">{"".join(panels)}</div></div></div>'
    )


def write_report(result: "ComparisonResult", folder: Path) -> Path:
    """Write `folder`/index.html (the plot copied into `folder`/assets); returns the page's path."""
    cfg = result.config
    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    plot_html = '<p class="note">No plot: it needs PSNR and NIQE or LPIPS among the metrics.</p>'
    if "plot" in result.files:
        shutil.copyfile(result.files["plot"], assets / "perception_distortion.png")
        plot_html = '<img src="assets/perception_distortion.png" alt="perception-distortion plot">'
    labels = [m.label for m in result.models]
    anchors = [f"img-{i}" for i in range(len(result.views))]
    nav = "".join(
        f'<a href="#{a}">{_e(v.dataset)}/{_e(v.name)}</a><br>' for a, v in zip(anchors, result.views, strict=True)
    )
    cards = "".join(
        _card(view, labels, result.keys, cfg.scale, anchor) for anchor, view in zip(anchors, result.views, strict=True)
    )
    models = ", ".join(
        f"{_e(m.label)} <span class='note'>({_e(m.architecture)}, {m.key[:12]})</span>" for m in result.models
    )
    failed = ""
    if result.failed:
        items = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in result.failed.items())
        failed = f'<section><h2>Images left out</h2><ul class="note">{items}</ul></section>'
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>srtk compare: {_e(", ".join(labels))} (x{cfg.scale})</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>srtk compare &middot; x{cfg.scale} &middot; {_e(", ".join(result.datasets))}</h1>
<p>{models}</p>
</header>
<main>
<section class="summary" id="summary">
<div class="scores"><h2>Metrics</h2><div class="tables">{_tables(result)}</div>
<p class="note"><b>Bold</b>: best; <u>underlined</u>: second best. &uarr; higher is better, &darr; lower is better.</p>
<p class="note">{_e(PROTOCOL.format(scale=cfg.scale))}.</p></div>
<div class="plot" id="plot"><h2>Perception&ndash;distortion</h2>{plot_html}</div>
</section>
{failed}
<section id="images">
<h2>Images</h2>
<p class="note">Every panel of an image shows the same window: scroll to zoom, drag to pan, double-click to go back
to the first crop. Crops are placed where the models' gradient maps M(I) disagree most. Gradient maps share one
scale (the HR map's {DISPLAY_PERCENTILE}th percentile is white), so a blurred output looks darker.</p>
<nav class="images">{nav}</nav>
{cards}
</section>
<p class="note">srtk {__version__}</p>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
    path = folder / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
