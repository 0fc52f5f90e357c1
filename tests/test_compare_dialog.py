"""Regenerate and compare in the window: run off the GUI thread, the verdict on top, an A/B view for
images (a slider, or side by side), both players for music, a diff for text; Keep saves a child."""

import threading

import pytest
from helpers import EventLog

from studio.core.paths import resources_dir
from studio.core.requests import ImageRequest, MusicRequest, TextRequest
from studio.ui.compare_dialog import ABView, CompareDialog
from studio.ui.gallery_panel import GalleryPanel

STARTERS = resources_dir() / "models"


def _generate(services, request):
    log = EventLog(services.worker)
    event = log.wait_end(services.worker.submit(request), timeout=240)
    assert event.kind.value == "finished", event.error
    return event.result[0]


def _run(qtbot, services, item, parent=None):
    dialog = CompareDialog(item, services, parent)
    qtbot.addWidget(dialog)
    reports = []
    threads = []
    dialog.finished_report.connect(lambda report: (reports.append(report), threads.append(threading.current_thread())))
    dialog.start()
    qtbot.waitUntil(lambda: bool(reports) or "Could not" in dialog.verdict.text(), timeout=120_000)
    assert reports, dialog.verdict.text()
    assert threads[0] is threading.main_thread()  # the result is shown on the GUI thread …
    return dialog, reports[0]


def test_an_image_regenerates_identically_with_an_ab_view_and_keep(qtbot, services):
    item = _generate(
        services,
        ImageRequest(
            prompt="a blue spiral", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=3
        ),
    )
    panel = GalleryPanel(services)
    qtbot.addWidget(panel)
    dialog, report = _run(qtbot, services, item, panel)
    assert report.identical and dialog.verdict.text().startswith("✓ identical")
    view = dialog.findChild(ABView)
    assert not view.a.isNull() and view.a.size() == view.b.size()
    assert view.a.pixel(10, 10) == view.b.pixel(10, 10)
    view.set_split(20)
    view.set_side_by_side(True)
    view.grab()  # paints both ways without error
    dialog.keep()
    services.store.close()
    children = [i for i in services.store.list() if i.record.parent == item.id]
    assert len(children) == 1 and children[0].record.derived_from["operation"]["identical"] is True


@pytest.mark.parametrize("kind", ["text", "music"])
def test_text_and_music_show_a_diff_or_both_players(qtbot, services, kind):
    from studio.ui.widgets.audio_player import AudioPlayer

    request = (
        TextRequest(prompt="In the beginning", model=str(STARTERS / "studio-starter-text"), seed=2, max_tokens=16)
        if kind == "text"
        else MusicRequest(prompt="a jig", model=str(STARTERS / "studio-starter-melody"), seed=1, duration=3)
    )
    item = _generate(services, request)
    dialog, report = _run(qtbot, services, item)
    assert report.identical
    if kind == "music":
        assert len(dialog.findChildren(AudioPlayer)) == 2
    dialog.reject()


def test_the_gallery_opens_it_from_a_button(qtbot, services):
    panel = GalleryPanel(services)
    qtbot.addWidget(panel)
    assert panel.compare_button.text() == "Regenerate and compare"
    assert panel.regenerate_current() is None  # nothing selected: nothing opens
