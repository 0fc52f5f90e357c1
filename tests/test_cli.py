"""The headless command line, run as a separate process like an artist's script would."""

import json
import os
import subprocess
import sys

import pytest

import studio


def studio_cli(*args, data_dir, check=False):
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_version(data_dir):
    result = studio_cli("--version", data_dir=data_dir, check=True)
    assert result.stdout.strip() == f"studio {studio.__version__}"


def test_gen_text_json_round_trip_through_worker_and_gallery(data_dir, tiny_lm):
    result = studio_cli(
        "gen",
        "text",
        "a quiet dawn",
        "--model",
        str(tiny_lm),
        "--seed",
        "9",
        "--max-tokens",
        "12",
        "--json",
        data_dir=data_dir,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    item = json.loads(lines[0])
    assert item["kind"] == "text" and item["seed"] == 9
    assert os.path.isabs(item["path"]) and os.path.exists(item["path"])
    listed = [
        json.loads(line)
        for line in studio_cli("gallery", "list", "--json", data_dir=data_dir, check=True).stdout.splitlines()
    ]
    assert [entry["id"] for entry in listed] == [item["id"]]
    found = studio_cli("gallery", "list", "--search", "quiet", "--json", data_dir=data_dir, check=True).stdout
    assert item["id"] in found
    assert studio_cli("gallery", "list", "--search", "thunder", "--json", data_dir=data_dir).stdout == ""
    assert studio_cli("verify", item["path"], data_dir=data_dir).returncode == 0
    with open(item["path"], "a") as handle:
        handle.write("tampered")
    assert studio_cli("verify", item["path"], data_dir=data_dir).returncode != 0


def test_gen_text_streams_to_stdout_without_json(data_dir, tiny_lm):
    result = studio_cli(
        "gen", "text", "colour", "--model", str(tiny_lm), "--max-tokens", "8", data_dir=data_dir, check=True
    )
    assert result.stdout.strip()
    assert "saved " in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gen", "text", "   ", "--model", "m"], "invalid prompt"),
        (["gen", "image", "fox", "--model", "m", "--width", "500"], "multiple of 8"),
        (["gen", "text", "x", "--model", "no-such-model"], "studio models list"),
        (["gen", "music", "x", "--model", "m", "--duration", "-1"], "duration"),
        (["verify", "/no/such/file.png"], ""),
    ],
)
def test_errors_are_one_line_and_a_failing_status(data_dir, args, message):
    result = studio_cli(*args, data_dir=data_dir)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    if message:
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_models_add_and_list_json(data_dir, tiny_lm, tiny_sd, tiny_musicgen):
    studio_cli("models", "add", str(tiny_lm.parent), data_dir=data_dir, check=True)
    rows = [
        json.loads(line)
        for line in studio_cli("models", "list", "--json", data_dir=data_dir, check=True).stdout.splitlines()
    ]
    by_id = {row["id"]: row for row in rows}
    assert by_id["tiny-chat-lm"]["kind"] == "text"
    assert by_id["tiny-sd"]["kind"] == "image"
    assert by_id["tiny-musicgen"]["kind"] == "music"
    assert all({"id", "kind", "family", "path", "runnable", "reason"} <= row.keys() for row in rows)
    # a model id now works in place of a folder
    result = studio_cli(
        "gen", "text", "x", "--model", "tiny-chat-lm", "--max-tokens", "3", "--json", data_dir=data_dir, check=True
    )
    assert json.loads(result.stdout)["kind"] == "text"


def test_gallery_rebuild_counts_items(data_dir, tiny_lm):
    studio_cli("gen", "text", "x", "--model", str(tiny_lm), "--max-tokens", "3", data_dir=data_dir, check=True)
    result = studio_cli("gallery", "rebuild", "--json", data_dir=data_dir, check=True)
    assert json.loads(result.stdout) == {"items": 1}


def test_gen_music_writes_a_flac_of_the_asked_duration(data_dir, tiny_musicgen):
    import soundfile

    args = ["gen", "music", "calm piano", "--model", str(tiny_musicgen), "--duration", "0.7", "--seed", "3"]
    item = json.loads(studio_cli(*args, "--json", data_dir=data_dir, check=True).stdout.splitlines()[0])
    info = soundfile.info(item["path"])
    assert info.format == "FLAC" and info.samplerate == 32000
    assert abs(info.frames - 0.7 * 32000) <= 640  # within one frame


def test_a_broken_model_is_named_on_stderr_and_in_the_log_file(data_dir, tiny_lm, tmp_path):
    import shutil

    broken = tmp_path / "broken-lm"
    shutil.copytree(tiny_lm, broken)
    (broken / "tokenizer.json").write_text("{}")
    result = studio_cli("gen", "text", "x", "--model", str(broken), data_dir=data_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "broken-lm" in result.stderr
    assert "broken-lm" in (data_dir / "logs" / "studio.log").read_text()


def test_gen_image_from_a_starting_image_with_a_chosen_scheduler(data_dir, tiny_sd, tmp_path):
    from PIL import Image

    start = tmp_path / "start.png"
    Image.new("RGB", (48, 48), (30, 90, 200)).save(start)
    args = ["gen", "image", "a blue sea", "--model", str(tiny_sd), "--width", "32", "--height", "32"]
    args += ["--steps", "4", "--seed", "5", "--scheduler", "DDIMScheduler", "--init-image", str(start)]
    result = studio_cli(*args, "--strength", "0.5", "--json", data_dir=data_dir, check=True)
    item = json.loads(result.stdout.splitlines()[0])
    record = json.loads(open(item["path"].rsplit(".", 1)[0] + ".json").read())
    assert record["request"]["init_image"] == str(start) and record["request"]["strength"] == 0.5
    assert record["runtime"]["scheduler"] == "DDIMScheduler"
    assert record["runtime"]["pipeline"] == "StableDiffusionImg2ImgPipeline"


def test_settings_set_checks_the_value_and_persists(data_dir):
    bad = studio_cli("settings", "set", "memory_mode", "tiny", data_dir=data_dir)
    assert bad.returncode == 2 and "auto, full, low" in bad.stderr
    studio_cli("settings", "set", "memory_mode", "low", data_dir=data_dir, check=True)
    listed = studio_cli("settings", "list", "--json", data_dir=data_dir, check=True).stdout.splitlines()
    values = {entry["name"]: entry["value"] for entry in map(json.loads, listed)}
    assert values["memory_mode"] == "low" and values["compile_models"] is False


def test_gallery_export_and_import_round_trip(data_dir, tiny_lm, tmp_path):
    made = studio_cli(
        "gen",
        "text",
        "a quiet dawn",
        "--model",
        str(tiny_lm),
        "--max-tokens",
        "6",
        "--json",
        data_dir=data_dir,
        check=True,
    )
    item = json.loads(made.stdout.splitlines()[0])
    out = tmp_path / "out"
    exported = studio_cli(
        "gallery", "export", item["id"], "--to", str(out), "--format", "txt", "--json", data_dir=data_dir, check=True
    )
    path = json.loads(exported.stdout)["path"]
    assert path.endswith(".txt") and os.path.dirname(path) == str(out)
    other = tmp_path / "other-data"
    imported = studio_cli("gallery", "import", item["path"], "--json", data_dir=other, check=True)
    assert json.loads(imported.stdout)["id"] == item["id"]  # our own file keeps its record and id
    assert studio_cli("gallery", "export", "NOPE", "--to", str(out), data_dir=data_dir).returncode == 2


def test_gen_notes_the_options_a_model_does_not_use(data_dir):
    """No controls to grey out on the command line: the model's capabilities become notes."""
    from pathlib import Path

    painter = Path(studio.__file__).parent.parent / "resources" / "models" / "studio-starter-patterns"
    result = studio_cli(
        "gen", "image", "teal rings", "--model", str(painter), "--width", "32", "--height", "32",
        "--steps", "40", "--negative", "blurry", "--seed", "1", "--json",
        data_dir=data_dir, check=True,
    )  # fmt: skip
    assert "--steps is ignored: the pattern painter paints in one pass" in result.stderr
    assert "--negative is ignored" in result.stderr
    assert "--guidance" not in result.stderr  # left at its default: nothing to say
    assert json.loads(result.stdout.splitlines()[0])["kind"] == "image"


def _painter():
    from pathlib import Path

    return Path(studio.__file__).parent.parent / "resources" / "models" / "studio-starter-patterns"


def test_gen_image_uses_the_models_native_size_as_the_window_does(data_dir, tmp_path):
    """Issue 22 #13: one source for the default size, the model's description (768 for the painter)."""
    import shutil

    from PIL import Image

    result = studio_cli("gen", "image", "teal rings", "--model", str(_painter()), "--seed", "1", "--json",
                        data_dir=data_dir, check=True)  # fmt: skip
    item = json.loads(result.stdout.splitlines()[0])
    with Image.open(item["path"]) as image:
        assert image.size == (768, 768)
    # given, a size is kept as asked
    small = studio_cli("gen", "image", "teal rings", "--model", str(_painter()), "--width", "64", "--seed", "1",
                       "--json", data_dir=data_dir, check=True)  # fmt: skip
    with Image.open(json.loads(small.stdout.splitlines()[0])["path"]) as image:
        assert image.size == (64, 768)
    # Issue 22 #11: verify names where the record came from in a whole phrase.
    lone = tmp_path / "lone.png"
    shutil.copy(item["path"], lone)
    verified = studio_cli("verify", str(lone), data_dir=data_dir)
    assert "read from the record embedded in the file" in verified.stdout, verified.stdout


def test_models_list_columns_line_up_without_a_terminal(data_dir, tiny_lm):
    """Issue 22 #15: plain text off a terminal, each column starting at the same place on every line."""
    studio_cli("models", "add", str(tiny_lm.parent), data_dir=data_dir, check=True)
    lines = studio_cli("models", "list", data_dir=data_dir, check=True).stdout.splitlines()
    assert lines[0].split() == ["id", "kind", "family", "status", "path"]
    assert len(lines) >= 4
    for column in ("kind", "family", "status"):
        start = lines[0].index(column)
        assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines[1:]), lines


class _Terminal(__import__("io").StringIO):
    def isatty(self):
        return True


def test_tables_and_progress_use_rich_on_a_terminal(monkeypatch):
    """Issue 22 #15: rich draws the table and a progress bar when the stream is a terminal."""
    from studio.cli import _Progress, print_table

    monkeypatch.setenv("COLUMNS", "120")
    terminal = _Terminal()
    print_table(["id", "kind"], [["a-very-long-model-id", "image"], ["x", "text"]], terminal)
    rows = terminal.getvalue().splitlines()
    assert rows[1].index("image") == rows[2].index("text")
    bar_stream = _Terminal()
    progress = _Progress(bar_stream, enabled=True)
    for step in range(1, 11):
        progress.update(step, 10)
    progress.finish()
    assert "━" in bar_stream.getvalue() and "10/10" in bar_stream.getvalue()
    plain = __import__("io").StringIO()
    quiet = _Progress(plain, enabled=True)
    quiet.update(10, 10)
    quiet.finish()
    assert plain.getvalue() == "progress 10/10\n"
