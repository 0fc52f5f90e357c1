"""Batch plans: a TOML file of jobs, validated before anything runs, resumable after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_cli import studio_cli

from studio.core.errors import InvalidRequest
from studio.runtime.batch import load_plan

PATTERNS = str(Path(__file__).parents[1] / "resources" / "models" / "studio-starter-patterns")


def _plan(tmp_path, text):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def _load(path):
    return load_plan(path, default_model=lambda kind: PATTERNS if kind == "image" else "")


def test_a_plan_expands_seeds_counts_defaults_and_sweeps(tmp_path):
    plan = _load(
        _plan(
            tmp_path,
            """
name = "foxes"
[defaults]
steps = 3
max_tokens = 5    # only text jobs have it: image jobs leave it
[[job]]
kind = "image"
prompt = "a red fox"
seeds = [1, 2]
width = 16
[[job]]
kind = "image"
prompt = "a blue fox"
count = 3
[[job]]
kind = "image"
prompt = "a green fox"
sweep = { x = "seed=1,2", y = "guidance=1,2" }
""",
        )
    )
    assert plan.name == "foxes"
    assert [j.request.seed for j in plan.jobs[:5]] == [1, 2, None, None, None]
    assert all(j.request.steps == 3 for j in plan.jobs)
    assert plan.jobs[0].request.width == 16 and plan.jobs[2].request.width == 512
    assert len(plan.jobs) == 2 + 3 + 4 and len(plan.grids) == 1
    assert len({j.key for j in plan.jobs} | {g.key for g in plan.grids}) == 10  # every key distinct
    again = _load(tmp_path / "plan.toml")
    assert [j.key for j in again.jobs] == [j.key for j in plan.jobs]  # stable across runs: what resume needs


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[job]]\nkind = "video"\nprompt = "x"', "kind must be text, image or music"),
        ('[[job]]\nkind = "image"\nprompt = "x"\ncolour = 3', "job 1: image requests have no field 'colour'"),
        ('[[job]]\nkind = "image"\nprompt = "x"\nsteps = 0', "job 1: steps must be between"),
        ('[[job]]\nkind = "image"\nprompt = "x"\nseeds = [1]\ncount = 2', "seeds or count, not both"),
        ('[[job]]\nkind = "text"\nprompt = "x"', "no text model found"),
        ("name = 'empty'", "no [[job]] tables"),
        ("[[job]\nkind=", "not valid TOML"),
    ],
)
def test_a_bad_plan_is_refused_before_anything_runs(tmp_path, text, words):
    with pytest.raises(InvalidRequest, match=words.replace("[", r"\[").replace("]", r"\]")):
        _load(_plan(tmp_path, text))


def test_a_plan_killed_midway_and_resumed_makes_each_item_once(tmp_path, data_dir):
    path = _plan(
        tmp_path,
        f"""
name = "resumable"
[[job]]
kind = "image"
model = "{PATTERNS}"
prompt = "a red fox"
width = 64
height = 64
count = 6
[[job]]
kind = "image"
model = "{PATTERNS}"
prompt = "a fox"
width = 16
height = 16
sweep = {{ x = "seed=1,2" }}
""",
    )
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    run = subprocess.Popen(
        [sys.executable, "-m", "studio", "batch", str(path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    first = run.stdout.readline()  # one item saved: kill the client hard, mid-plan
    os.kill(run.pid, signal.SIGKILL)
    run.wait(30)
    assert json.loads(first)["batch"]["skipped"] is False
    refused = studio_cli("batch", str(path), data_dir=data_dir)
    assert refused.returncode == 1 and "--resume" in refused.stderr
    resumed = studio_cli("batch", str(path), "--resume", "--json", data_dir=data_dir, check=True)
    lines = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert len(lines) == 6 + 2 + 1 and sum(line["batch"]["skipped"] for line in lines) >= 1
    listed = [json.loads(x) for x in studio_cli("gallery", "list", "--json", data_dir=data_dir).stdout.splitlines()]
    assert len(listed) == 9  # nothing made twice, nothing lost
    keys = Counter()
    for entry in listed:
        sidecar = Path(entry["path"]).with_suffix(".json")
        keys[json.loads(sidecar.read_text())["runtime"]["batch"]["key"]] += 1
    assert len(keys) == 9 and set(keys.values()) == {1}
    started = time.monotonic()
    again = studio_cli("batch", str(path), "--resume", "--json", data_dir=data_dir, check=True)
    assert all(json.loads(line)["batch"]["skipped"] for line in again.stdout.splitlines())
    assert time.monotonic() - started < 60
