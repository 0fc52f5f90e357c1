"""Sweep axes beyond request fields: an adapter's weight (``lora:NAME=…``) on images and text, and the
Text tab's sweep, whose "grid" is a Markdown table item listing its cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_adapters
import tiny_models
from helpers import EventLog
from PIL import Image
from test_cli import studio_cli

from studio.core.errors import InvalidRequest
from studio.core.requests import ImageRequest, MusicRequest, TextRequest
from studio.core.sweep import expand, parse_axis
from studio.gallery.content import read_text_body
from studio.runtime.batch import load_plan
from studio.runtime.sweeps import start_sweep

TEXT = str(Path(__file__).parents[1] / "resources" / "models" / "studio-starter-text")


@pytest.fixture(scope="module")
def lora_lib(tmp_path_factory):
    """The tiny SD (reading letters) and one kohya LoRA for it, ``inkwash``."""
    root = tmp_path_factory.mktemp("sweep-lora")
    sd = tiny_adapters.give_words_to_tiny_sd(tiny_models.build_tiny_sd_pipeline(root / "models" / "tiny-sd"))
    tiny_adapters.build_tiny_lora_kohya(sd, root / "loras" / "inkwash.safetensors", seed=0, rank=4)
    return {"sd": sd, "loras": root / "loras"}


@pytest.fixture
def lora_services(paths, lora_lib):
    from studio.core.settings import Settings
    from studio.runtime.services import open_services

    settings = Settings.load(paths.settings_file)
    settings.set("model_folders", [str(lora_lib["loras"])])
    settings.save()
    opened = open_services(paths)
    yield opened
    opened.close()


def test_an_adapter_weight_axis_sets_that_adapter_in_the_request():
    base = ImageRequest(prompt="a fox <lora:inkwash:0.3>", model="m", loras=(("/lib/inkwash.safetensors", 0.8),))
    axis = parse_axis("lora:inkwash=0.2, 0.6, 1", base)
    cells = expand(base, [axis])
    # The listed entry changes in place (matched by its stem); the list beats the prompt's tag.
    assert [c.request.loras for c in cells] == [((("/lib/inkwash.safetensors", w)),) for w in (0.2, 0.6, 1.0)]
    assert [c.labels for c in cells] == [("lora inkwash: 0.2",), ("lora inkwash: 0.6",), ("lora inkwash: 1",)]
    added = expand(base, [parse_axis("lora:softlight=0-1 [3]", base)])
    assert added[1].request.loras == (("/lib/inkwash.safetensors", 0.8), ("softlight", 0.5))
    text = TextRequest(prompt="hi", model="m", lora="/lib/poet-lora")
    texts = expand(text, [parse_axis("lora:poet-lora=0.5,1.5", text)])
    pairs = [(c.request.lora, c.request.lora_weight) for c in texts]
    assert pairs == [("/lib/poet-lora", 0.5), ("/lib/poet-lora", 1.5)]


@pytest.mark.parametrize(
    ("base", "spec", "words"),
    [
        (ImageRequest(prompt="x", model="m"), "lora:=1", "names it"),
        (ImageRequest(prompt="x", model="m"), "lora:ink=3", "between -2 and 2"),
        (ImageRequest(prompt="x", model="m"), "lora:ink=strong", "not a number"),
        (MusicRequest(prompt="x", model="m"), "lora:ink=1", "take no adapters"),
        (TextRequest(prompt="x", model="m", lora="poet"), "lora:other=1", "a text job takes one"),
        (ImageRequest(prompt="x", model="m"), "colour=1", "lora:NAME for an adapter's weight"),
    ],
)
def test_a_bad_adapter_axis_is_named(base, spec, words):
    with pytest.raises(InvalidRequest, match=words):
        expand(base, [parse_axis(spec, base)])


def test_an_image_sweep_over_a_lora_weight_changes_the_image_and_labels_the_grid(lora_services, lora_lib):
    services = lora_services
    log = EventLog(services.worker)
    base = ImageRequest(prompt="abc", model=str(lora_lib["sd"]), width=32, height=32, steps=2, seed=5)
    axes = [parse_axis("lora:inkwash=0,1.5", base), parse_axis("seed=5,6", base)]
    jobs = start_sweep(services.worker, services.store, base, axes)
    ends = {job: log.wait_end(job, 240) for job in jobs.job_ids}
    assert all(e.kind.value == "finished" for e in ends.values()), [e.error for e in ends.values()]
    cells = [ends[job].result[0] for _, job in jobs.cells]
    assert [[list(p) for p in c.record.request["loras"]] for c in cells[:2]] == [[["inkwash", 0.0]], [["inkwash", 1.5]]]
    assert cells[1].record.model["adapters"][0]["weight"] == 1.5  # the record says the weight it ran with
    off, on = (np.asarray(Image.open(c.path)).astype(int) for c in cells[:2])
    assert np.abs(off - on).mean() > 1  # the weight is what the axis varied: the pictures differ
    grid = ends[jobs.grids[0]].result[0]
    assert grid.record.output["grid"]["axes"][0] == {"axis": "x", "field": "lora:inkwash", "values": [0.0, 1.5]}
    assert grid.record.output["grid"]["cells"] == [[cells[0].id, cells[1].id], [cells[2].id, cells[3].id]]


def test_cli_and_batch_plans_take_an_adapter_axis(lora_services, lora_lib, data_dir, tmp_path):
    lora_services.close()  # the CLI opens the gallery itself
    result = studio_cli(
        "sweep", "image", "abc", "--model", str(lora_lib["sd"]), "--width", "32", "--height", "32", "--steps", "1",
        "--seed", "3", "--x", "lora:inkwash=0.5,1", "--json", data_dir=data_dir, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sweep"].get("labels") for line in lines[:2]] == [["lora inkwash: 0.5"], ["lora inkwash: 1"]]
    assert lines[-1]["sweep"] == {"grid": True}
    plan = tmp_path / "ink.toml"
    plan.write_text(
        f'[[job]]\nkind = "image"\nmodel = "{lora_lib["sd"]}"\nprompt = "abc"\nwidth = 32\nheight = 32\nsteps = 1\n'
        f'seeds = [4]\nloras = [["{lora_lib["loras"] / "inkwash.safetensors"}", 0.7]]\n'
        'sweep = { x = "lora:inkwash=0.2,0.9" }\n'
    )
    loaded = load_plan(plan, default_model=lambda kind: "")
    assert [j.request.loras[0][1] for j in loaded.jobs] == [0.2, 0.9] and len(loaded.grids) == 1


def test_a_text_sweep_ends_with_a_markdown_table_listing_its_cells(services):
    log = EventLog(services.worker)
    base = TextRequest(prompt="Once upon a time", model=TEXT, max_tokens=6)
    axes = [parse_axis("temperature=0.5,1.0", base), parse_axis("prompt=time,night", base)]
    jobs = start_sweep(services.worker, services.store, base, axes)
    assert len(jobs.grids) == 1
    ends = {job: log.wait_end(job, 240) for job in jobs.job_ids}
    assert all(e.kind.value == "finished" for e in ends.values()), [e.error for e in ends.values()]
    cells = [ends[job].result[0] for _, job in jobs.cells]
    assert len({c.record.request["seed"] for c in cells}) == 1  # only the axes vary
    table = ends[jobs.grids[0]].result[0]
    assert table.kind == "text" and table.path.suffix == ".md"
    assert table.record.output["grid"]["cells"] == [[cells[0].id, cells[1].id], [cells[2].id, cells[3].id]]
    body = read_text_body(table.path)
    assert "| temperature: 0.5 | temperature: 1 |" in body
    rows = [line for line in body.splitlines() if line.startswith("| **prompt")]
    assert [r.split("|")[1].strip() for r in rows] == ["**prompt: time**", "**prompt: night**"]
    first_words = read_text_body(cells[3].path).strip().splitlines()[0].replace("|", "\\|")
    assert first_words in rows[1]  # each cell shows what its job wrote


def test_the_sweep_dialog_offers_each_adapter_weight(qtbot):
    from studio.ui.sweep_dialog import SweepDialog

    base = ImageRequest(prompt="a fox <lora:softlight:0.4>", model="m", loras=(("/lib/inkwash.safetensors", 0.8),))
    dialog = SweepDialog(base)
    qtbot.addWidget(dialog)
    x_field, x_values = dialog._rows[0]
    labels = [x_field.itemText(i) for i in range(x_field.count())]
    assert "LoRA weight: inkwash" in labels and "LoRA weight: softlight" in labels
    x_field.setCurrentIndex(x_field.findData("lora:/lib/inkwash.safetensors"))
    x_values.setText("0.2, 0.6, 1.0")
    assert dialog.summary.text() == "3 image jobs, then a grid"
    assert dialog.axes()[0].field == "lora:/lib/inkwash.safetensors"
    text = SweepDialog(TextRequest(prompt="x", model="m"))
    qtbot.addWidget(text)
    assert text.summary.text() == "4 text jobs, then a table of the texts"


def test_the_text_tab_sweeps_and_shows_the_table(qtbot, window, monkeypatch):
    from studio.ui.sweep_dialog import SweepDialog

    panel = window.text_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(TEXT))
    qtbot.keyClicks(panel.prompt, "Once upon a time")
    panel.max_tokens.setValue(16)

    def run_dialog(dialog):
        field, values = dialog._rows[0]
        field.setCurrentIndex(field.findData("seed"))
        values.setText("1, 2")
        return SweepDialog.DialogCode.Accepted

    monkeypatch.setattr(SweepDialog, "exec", run_dialog)
    qtbot.waitUntil(panel.sweep_button.isEnabled, timeout=20000)
    saved = []
    panel.items_saved.connect(saved.extend)
    panel.sweep_button.click()
    assert "2 jobs, then the table" in panel.run_status.text()
    qtbot.waitUntil(lambda: len(saved) == 3, timeout=120000)
    assert saved[-1].record.output["grid"]["cells"] == [[saved[0].id, saved[1].id]]
    assert "| seed: 1 | seed: 2 |" in panel.output.toPlainText()
    assert panel.output_stack.currentWidget() is panel.continuation_page
    qtbot.waitUntil(panel.sweep_button.isEnabled, timeout=10000)
