"""``studio train``: run as a separate process, like an artist's script; the tiny trainer stands in
for the text trainer (``tests/tiny_trainer_cli.py`` puts it in the registry)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_trainer import write_texts

from studio.cli import build_parser
from studio.cli_train import data_reference, train_request

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _env(data_dir, **extra):
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "PYTHONPATH": path, **extra}


def train_cli(*args, data_dir, **env):
    return subprocess.run(
        [sys.executable, str(TESTS / "tiny_trainer_cli.py"), "train", *args],
        capture_output=True, text=True, env=_env(data_dir, **env), timeout=300, check=False,
    )  # fmt: skip


def studio_cli(*args, data_dir):
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=_env(data_dir), timeout=300,
        check=False,
    )  # fmt: skip


def test_options_become_the_request(tmp_path):
    folder = tmp_path / "writing"
    folder.mkdir()
    args = build_parser().parse_args(
        ["train", "image", "--data", str(folder), "favourites", "--data", "search:red fox", "--name", "Fox",
         "--method", "lora", "--steps", "40", "--rank", "8", "--alpha", "4", "--lr", "1e-4", "--batch", "2",
         "--resolution", "512", "--trigger", "foxstyle", "--rights", "mine", "--caption", f"{folder}=a red fox",
         "--sample-every", "10", "--sample-prompt", "a fox", "--resume", "--seed", "7"]
    )  # fmt: skip
    request = train_request(args)
    assert request.data == (str(folder.resolve()), "gallery:favourites", "gallery:search:red fox")
    assert (request.medium, request.name, request.method, request.steps, request.rank) == (
        "image",
        "Fox",
        "lora",
        40,
        8,
    )
    assert (request.alpha, request.learning_rate, request.batch_size, request.resolution) == (4.0, 1e-4, 2, 512)
    assert request.trigger == "foxstyle" and request.rights == "mine" and request.resume and request.seed == 7
    assert request.captions == ((str(folder.resolve()), "a red fox"),)
    assert request.sample_every == 10 and request.sample_prompts == ("a fox",)

    class Store:
        def get(self, ref):
            return object() if ref == "01ABC" else None

    assert data_reference("01ABC", Store()) == "gallery:01ABC"
    assert data_reference("gallery:01XYZ") == "gallery:01XYZ"
    bad = build_parser().parse_args(["train", "text", "--data", "x", "--name", "n", "--caption", "no-equals"])
    with pytest.raises(ValueError, match="FILE=TEXT"):
        train_request(bad)


def test_train_prints_the_summary_then_json_and_the_result_is_usable_in_gen(tmp_path, data_dir, tiny_base_lm):
    folder = tmp_path / "writing"
    write_texts(folder)
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    shown = train_cli("text", "--data", str(folder), "--name", "Harbour Voice", "--base", str(tiny_base_lm),
                      "--steps", "4", "--rights", "my own words", data_dir=data_dir)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert (
        "learning from 5 text files" in shown.stderr and "left out: cover.png: a PNG file in a text set" in shown.stderr
    )
    assert "rights: my own words" in shown.stderr and "training 4/4" in shown.stderr
    assert "use it: studio gen text PROMPT --lora harbour-voice" in shown.stdout

    result = train_cli("text", "--data", str(folder), "--name", "Harbour Model", "--base", str(tiny_base_lm),
                       "--method", "full", "--steps", "4", "--json", data_dir=data_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    trained = json.loads(lines[0])
    assert trained["model"] == "harbour-model" and trained["kind"] == "text" and trained["files"] == 5
    assert len(trained["data_digest"]) == 64 and trained["final_loss"] > 0

    made = studio_cli("gen", "text", "The harbour", "--model", "Harbour Model", "--max-tokens", "4", "--json",
                      data_dir=data_dir)  # fmt: skip
    assert made.returncode == 0, made.stderr
    item = json.loads(made.stdout.splitlines()[-1])
    assert item["model"] == "harbour-model"
    verified = studio_cli("verify", item["path"], data_dir=data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (
        f"made with Harbour Model, trained by you on 5 files (digest {trained['data_digest'][:12]}…)" in verified.stdout
    )

    with_lora = studio_cli("gen", "text", "The harbour", "--model", str(tiny_base_lm), "--lora", "harbour-voice",
                           "--max-tokens", "4", "--json", data_dir=data_dir)  # fmt: skip
    assert with_lora.returncode == 0, with_lora.stderr
    sidecar = Path(json.loads(with_lora.stdout.splitlines()[-1])["path"]).with_suffix(".json")
    assert json.loads(sidecar.read_text())["model"]["adapters"][0]["training"]["files"] == 5


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--data", "{empty}"], 2, "invalid data: nothing to learn from"),
        (["--data", "{nowhere}"], 2, "invalid data:"),
        (
            ["--data", "{writing}", "--base", "studio-starter-melody"],
            2,
            "invalid base: studio-starter-melody is a music",
        ),
        (["--data", "{writing}", "--name", "studio-starter-text"], 2, "invalid name: 'studio-starter-text' already"),
        (["--data", "{writing}", "--resume"], 2, "nothing to resume"),
    ],
    ids=["empty folder", "no such folder", "a base of another medium", "a name the library has", "nothing to resume"],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, data_dir, args, status, message):
    (tmp_path / "empty").mkdir()
    write_texts(tmp_path / "writing")
    filled = [
        a.format(empty=tmp_path / "empty", nowhere=tmp_path / "nowhere", writing=tmp_path / "writing") for a in args
    ]
    if "--name" not in filled:
        filled += ["--name", "Trial"]
    result = train_cli("text", *filled, data_dir=data_dir)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert not (data_dir / "data" / "models" / "trained").exists()


def test_ctrl_c_keeps_the_checkpoint_and_resume_finishes(tmp_path, data_dir, tiny_base_lm):
    folder = tmp_path / "writing"
    write_texts(folder)
    args = ["text", "--data", str(folder), "--name", "Long Run", "--base", str(tiny_base_lm), "--steps", "40",
            "--checkpoint-every", "100"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "tiny_trainer_cli.py"), "train", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(data_dir, TINY_TRAINER_STEP_S="0.25"),
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if line.startswith("training "):
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + rest
    assert "checkpoint is kept in" in rest and "--resume" in rest
    checkpoint = data_dir / "data" / "training" / "long-run" / "checkpoint"
    assert any(p.name != "run.json" for p in checkpoint.iterdir())
    assert not (data_dir / "data" / "models" / "trained" / "long-run").exists()

    estimate = train_cli(*args, "--estimate", "--resume", data_dir=data_dir)
    assert estimate.returncode == 0, estimate.stderr
    assert estimate.stdout.startswith("estimate: 40 steps in about ") and "nothing was trained" in estimate.stdout

    resumed = train_cli(*args, "--resume", "--json", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 40
    assert not checkpoint.exists()
