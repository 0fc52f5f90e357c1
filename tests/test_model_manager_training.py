"""The model manager's line for a model trained in Studio: who trained it, on how many files, the
digest, the base and the rights — read from the real ``studio_training.json`` through the library."""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.models import ModelSpec
from studio.core.training import TRAINING_FILE, DataSummary, TrainingCard, TrainingFile
from studio.engines.library.training_cards import training_details
from studio.ui.model_manager import training_summary


def _card(folder: Path, files: int) -> DataSummary:
    summary = DataSummary(
        "music",
        tuple(TrainingFile(f"/tunes/{n}.mid", f"{n:064x}", 100, "music") for n in range(files)),
        rights="my own tunes",
    )
    card = TrainingCard(
        name="My Waltzes", medium="music", method="full", result_kind="music",
        base={"id": "studio-starter-melody", "name": "studio-starter-melody", "sha256": "ab" * 32},
        settings={}, steps=20, final_loss=0.5, best_loss=0.45, duration_s=12.0, device="CPU",
        data=summary, created_at="2026-12-01T00:00:00Z", app_version="test",
    )  # fmt: skip
    folder.mkdir(parents=True)
    (folder / TRAINING_FILE).write_text(json.dumps(card.to_dict()), encoding="utf-8")
    return summary


def test_a_trained_model_says_what_it_learned_from(tmp_path):
    folder = tmp_path / "my-waltzes"
    summary = _card(folder, 20)
    spec = ModelSpec("my-waltzes", "My Waltzes", "music", "studio-melody", folder, "folder", True,
                     details={"training": training_details(folder)})  # fmt: skip
    line = training_summary(spec)
    assert line == (
        f"Trained by you on 20 files (data digest {summary.digest[:12]}…) from studio-starter-melody; "
        "rights: my own tunes."
    )


def test_a_model_nobody_trained_here_has_no_such_line(tmp_path):
    spec = ModelSpec("m", "m", "music", "studio-melody", tmp_path, "folder", True)
    assert training_summary(spec) == ""
