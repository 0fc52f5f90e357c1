"""The gallery at scale: opening 100,000 items, searching them, and saving one output.

- ``gallery_open_100k_s``: a fresh process's work to show the Gallery tab over an index of N
  items — opening the index, querying the ids, building the virtual grid and painting it once.
- ``gallery_search_100k_ms``: an FTS search (a prompt word) over those items, median of rounds.
- ``save_ms`` / ``save_signed_ms``: one 512×512 PNG saved with its metadata, sidecar and index
  row, without and with C2PA signing, median of rounds.

The N index rows are written straight into the index (no files behind them): what is measured is
the index and the grid, not the disk. The saves write real files.

    python -m benchmarks.gallery_scale [--items 100000] [--rounds 20] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_WORDS = "fox hills dawn river castle storm harbour forest neon portrait cat robot garden winter".split()


def fill_index(store, count: int, sources: list[Path] | None = None) -> None:
    """``count`` index rows; with ``sources`` the image rows point at those files (for thumbnails)."""
    from studio.core.provenance import ProvenanceRecord, new_item_id
    from studio.gallery.store import GalleryItem, _insert

    base_ms = int(time.time() * 1000) - count * 1000
    with store._transaction() as db:
        for n in range(count):
            words = " ".join(_WORDS[(n * k) % len(_WORDS)] for k in (1, 3, 7))
            record = ProvenanceRecord(
                id=new_item_id(base_ms + n * 1000),
                kind=("image", "music", "text")[n % 3],
                created_at="2026-11-01T00:00:00.000Z",
                app={"name": "Studio", "version": "bench"},
                model={"id": f"model-{n % 7}", "name": f"model-{n % 7}"},
                request={"prompt": f"a {words} number {n}", "seed": n},
                runtime={},
                output={"sha256": "0" * 64},
            )
            path = store.root / f"x/{record.id}.png"
            if sources and record.kind == "image":
                path = sources[n % len(sources)]
            _insert(db, GalleryItem(record.id, record.kind, path, record), store.root)


def time_open(data_dir: Path) -> float:
    """Seconds from nothing to the Gallery tab painted once over the index, in this process."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from studio.ui.gallery_panel import GalleryPanel

    app = QApplication.instance() or QApplication([])
    start = time.perf_counter()
    services = open_services(StudioPaths.under(data_dir))
    panel = GalleryPanel(services)
    panel.resize(1200, 800)
    panel.show()
    panel.view.viewport().repaint()
    app.processEvents()
    elapsed = time.perf_counter() - start
    shown = panel.model.rowCount()
    panel.shutdown()
    panel.deleteLater()
    services.close()
    app.processEvents()
    assert shown > 0
    return elapsed


def time_saves(store, rounds: int) -> list[float]:
    import numpy as np

    from studio.core.outputs import GeneratedOutput
    from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso

    pixels = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    times = []
    for n in range(rounds):
        record = ProvenanceRecord(
            id=new_item_id(),
            kind="image",
            created_at=utc_now_iso(),
            app={"name": "Studio", "version": "bench"},
            model={"id": "m", "name": "m", "sha256": "ab" * 32},
            request={"kind": "image", "prompt": f"bench {n}", "seed": n, "width": 512, "height": 512},
            runtime={},
        )
        start = time.perf_counter()
        store.save(GeneratedOutput("image", pixels), record)
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(args: argparse.Namespace) -> dict:
    """Run the measurement with parsed options; the result keys are the harness's."""

    from studio.core.paths import StudioPaths
    from studio.gallery.credentials import ContentCredentials
    from studio.gallery.store import GalleryStore

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        paths = StudioPaths.under(data_dir).ensure()
        store = GalleryStore(paths.gallery)
        started = time.perf_counter()
        fill_index(store, args.items)
        fill_s = time.perf_counter() - started
        searches = []
        for n in range(args.rounds):
            start = time.perf_counter()
            found = store.ids(search=_WORDS[n % len(_WORDS)])
            searches.append((time.perf_counter() - start) * 1000)
            assert found
        store.close()
        open_s = time_open(data_dir)
        plain = GalleryStore(Path(tmp) / "plain")
        save_ms = time_saves(plain, args.rounds)
        plain.close()
        signed = GalleryStore(
            Path(tmp) / "signed", sign_outputs=lambda: True, credentials=ContentCredentials(Path(tmp) / "keys")
        )
        signed_ms = time_saves(signed, args.rounds)
        signed.close()
    result = {
        "items": args.items,
        "index_fill_s": round(fill_s, 2),
        "gallery_open_100k_s": round(open_s, 3),
        "gallery_search_100k_ms": round(statistics.median(searches), 2),
        "save_ms": round(statistics.median(save_ms), 2),
        "save_signed_ms": round(statistics.median(signed_ms), 2),
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
