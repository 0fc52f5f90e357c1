"""Sweeps: axes parsed like A1111's X/Y/Z plot, a job per cell, and a labelled grid that lists its cells."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import EventLog
from PIL import Image
from test_cli import studio_cli

from studio.core.errors import InvalidRequest
from studio.core.requests import ImageRequest, TextRequest
from studio.core.sweep import expand, parse_axis
from studio.gallery.grid import compose_grid
from studio.runtime.sweeps import start_sweep

PATTERNS = str(Path(__file__).parents[1] / "resources" / "models" / "studio-starter-patterns")
BASE = ImageRequest(prompt="a red fox", model=PATTERNS, width=64, height=48, seed=5)


def test_axis_values_ranges_and_types():
    assert parse_axis("seed=1-4", BASE).values == (1, 2, 3, 4)
    assert parse_axis("steps=1-10 (+3)", BASE).values == (1, 4, 7, 10)
    assert parse_axis("guidance=1-2 [3]", BASE).values == (1.0, 1.5, 2.0)
    assert parse_axis("guidance=3, 7.5", BASE).values == (3.0, 7.5)
    assert parse_axis("size=64x48,32x32", BASE).values == ((64, 48), (32, 32))
    assert parse_axis('scheduler="A, B",C', BASE).values == ("A, B", "C")
    axis = parse_axis("prompt=red,blue", BASE)
    assert [c.request.prompt for c in expand(BASE, [axis])] == ["a red fox", "a blue fox"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("colour=1,2", "no field 'colour'"),
        ("steps=1.5", "whole numbers"),
        ("steps=many", "not a number"),
        ("prompt=green,blue", "'green' is not in the prompt"),
        ("seed", "FIELD=V1,V2"),
        ("init_image=a.png", "no field"),
    ],
)
def test_bad_axes_are_named(spec, words):
    with pytest.raises(InvalidRequest, match=words):
        parse_axis(spec, BASE)


def test_every_cell_is_validated_and_the_grid_size_is_bounded():
    with pytest.raises(InvalidRequest, match=r"steps = 0"):
        expand(BASE, [parse_axis("steps=0,1", BASE)])
    with pytest.raises(InvalidRequest, match="at most 1000"):
        expand(BASE, [parse_axis("seed=1-100", BASE), parse_axis("steps=1-20", BASE)])
    with pytest.raises(InvalidRequest, match="different field"):
        expand(BASE, [parse_axis("seed=1,2", BASE), parse_axis("seed=3,4", BASE)])
    text = TextRequest(prompt="hi", model="m")
    with pytest.raises(InvalidRequest, match="only images have a size"):
        parse_axis("size=8x8", text)


def test_cells_are_read_z_then_y_then_x():
    axes = [parse_axis(spec, BASE) for spec in ("seed=1,2", "steps=3,4", "guidance=1,2")]
    cells = expand(BASE, axes)
    assert [c.index for c in cells][:3] == [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    assert cells[-1].request.seed == 2 and cells[-1].request.steps == 4 and cells[-1].request.guidance == 2.0
    assert cells[-1].labels == ("seed: 2", "steps: 4", "guidance: 2")


def test_grid_puts_each_cell_under_its_label_and_marks_a_missing_one(tmp_path):
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(red)
    Image.new("RGB", (40, 30), (0, 0, 255)).save(blue)
    pixels = compose_grid([[red, blue], [blue, "failed: out of memory"]], ["seed: 1", "seed: 2"], ["a", "b"])
    height, width = pixels.shape[:2]
    assert width > 80 and height > 60  # two tiles each way, plus labels
    # The top-left tile is red, the bottom-right is the grey "failed" tile.
    assert (pixels == [255, 0, 0]).all(axis=2).sum() >= 40 * 30 - 1
    assert (pixels == [200, 200, 200]).all(axis=2).sum() > 40 * 30 / 2
    assert (pixels == [0, 0, 255]).all(axis=2).sum() >= 2 * 40 * 30 - 2


def test_a_sweep_runs_each_cell_as_a_job_and_saves_a_grid_listing_them(services):
    log = EventLog(services.worker)
    base = ImageRequest(prompt="a red fox", model=PATTERNS, width=32, height=32)
    axes = [parse_axis("seed=1,2", base), parse_axis("prompt=red,blue", base)]
    jobs = start_sweep(services.worker, services.store, base, axes)
    ends = {job: log.wait_end(job, 120) for job in jobs.job_ids}
    assert all(end.kind.value == "finished" for end in ends.values()), [e.error for e in ends.values()]
    cells = [ends[job].result[0] for _, job in jobs.cells]
    assert [c.record.request["seed"] for c in cells] == [1, 2, 1, 2]
    assert [c.record.request["prompt"] for c in cells] == ["a red fox", "a red fox", "a blue fox", "a blue fox"]
    grid = ends[jobs.grids[0]].result[0]
    assert grid.record.output["grid"]["cells"] == [[cells[0].id, cells[1].id], [cells[2].id, cells[3].id]]
    assert [a["field"] for a in grid.record.output["grid"]["axes"]] == ["seed", "prompt"]
    with Image.open(grid.path) as image:
        assert image.width > 64 and image.height > 64
        assert json.loads(image.text["studio_provenance"])["output"]["grid"]["cells"][0][0] == cells[0].id


def test_one_seed_for_every_cell_unless_the_seed_is_an_axis(services):
    log = EventLog(services.worker)
    base = ImageRequest(prompt="a red fox", model=PATTERNS, width=16, height=16)
    jobs = start_sweep(services.worker, services.store, base, [parse_axis("guidance=1,2", base)])
    seeds = {log.wait_end(job, 120).result[0].record.request["seed"] for _, job in jobs.cells}
    log.wait_end(jobs.grids[0], 60)
    assert len(seeds) == 1 and None not in seeds


def test_a_cancelled_cell_is_a_marked_tile_and_the_rest_still_make_a_grid(services):
    log = EventLog(services.worker)
    base = ImageRequest(prompt="a red fox", model=PATTERNS, width=16, height=16)
    jobs = start_sweep(services.worker, services.store, base, [parse_axis("seed=1,2,3", base)])
    services.worker.cancel(jobs.cells[2][1])
    grid = log.wait_end(jobs.grids[0], 120)
    assert grid.kind.value == "finished", grid.error
    cells = grid.result[0].record.output["grid"]["cells"]
    assert cells[0][0] and cells[0][1] and cells[0][2] is None


def test_cli_sweep_prints_each_cell_then_the_grid(data_dir):
    result = studio_cli(
        "sweep", "image", "a red fox", "--model", PATTERNS, "--width", "16", "--height", "16",
        "--x", "seed=1,2", "--y", "prompt=red,blue", "--json", data_dir=data_dir, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sweep"].get("cell") for line in lines[:4]] == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert lines[-1]["sweep"] == {"grid": True} and len(lines) == 5
    bad = studio_cli("sweep", "image", "fox", "--model", PATTERNS, "--x", "colour=1", data_dir=data_dir)
    assert bad.returncode == 2 and "no field 'colour'" in bad.stderr
    ignored = studio_cli("sweep", "image", "fox", "--model", PATTERNS, "--x", "steps=2,3", data_dir=data_dir)
    assert ignored.returncode == 2 and "same output each time" in ignored.stderr
    assert np.asarray(Image.open(lines[-1]["path"])).shape[2] == 3


def test_the_sweep_dialog_checks_axes_as_they_are_typed(qtbot):
    from studio.ui.sweep_dialog import SweepDialog

    dialog = SweepDialog(BASE)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    (x_field, _), (y_field, y_values), _ = dialog._rows
    assert x_field.currentData() == "seed" and ok.isEnabled() and dialog.summary.text() == "4 image jobs, then a grid"
    y_field.setCurrentIndex(y_field.findData("steps"))
    y_values.setText("2, 0")
    assert not ok.isEnabled() and "steps = 0" in dialog.summary.text()
    y_values.setText("2, 3")
    assert ok.isEnabled() and dialog.summary.text().startswith("4 × 2 = 8 image jobs")
    assert [a.field for a in dialog.axes()] == ["seed", "steps"]


def test_the_sweep_dialog_greys_out_what_the_model_ignores(qtbot):
    from studio.ui.sweep_dialog import SweepDialog

    dialog = SweepDialog(BASE, unused={"steps": "this model paints in one pass"})
    qtbot.addWidget(dialog)
    field = dialog._rows[1][0]
    index = field.findData("steps")
    assert not field.model().item(index).isEnabled()
    assert field.itemData(index, 3) == "this model paints in one pass"  # Qt.ToolTipRole


def test_the_image_tab_queues_a_sweep_and_shows_its_cells_and_grid(qtbot, services, monkeypatch):
    from helpers import show_active

    from studio.ui.main_window import MainWindow
    from studio.ui.sweep_dialog import SweepDialog

    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    panel = main.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(PATTERNS))
    qtbot.keyClicks(panel.prompt, "a red fox")
    panel.width_box.setValue(16)
    panel.height_box.setValue(16)

    def run_dialog(dialog):
        _, x_values = dialog._rows[0]
        x_values.setText("1, 2")
        y_field, y_values = dialog._rows[1]
        y_field.setCurrentIndex(y_field.findData("prompt"))
        y_values.setText("red, blue")
        return SweepDialog.DialogCode.Accepted

    monkeypatch.setattr(SweepDialog, "exec", run_dialog)
    assert panel.sweep_button.isEnabled()
    saved = []
    panel.items_saved.connect(saved.extend)
    panel.sweep_button.click()
    assert "4 jobs" in panel.run_status.text()
    qtbot.waitUntil(lambda: len(saved) == 5, timeout=120000)
    grid = saved[-1]
    assert grid.record.output["grid"]["cells"][1][1] == saved[3].id
    assert [i.record.request["prompt"] for i in saved[:4]] == ["a red fox", "a red fox", "a blue fox", "a blue fox"]
    qtbot.waitUntil(lambda: not panel.busy(), timeout=10000)
    main.shutdown()
