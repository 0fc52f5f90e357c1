"""Everything a Studio run needs, built the same way for the window and the CLI."""

from __future__ import annotations

import logging
import logging.handlers
from dataclasses import dataclass
from pathlib import Path

import studio
from studio.core.errors import StudioError
from studio.core.models import ModelSpec
from studio.core.paths import StudioPaths, resources_dir
from studio.core.settings import Settings
from studio.engines import compile_cache
from studio.engines.fingerprint import WeightFingerprints
from studio.engines.library import ModelCatalog
from studio.gallery.credentials import ContentCredentials
from studio.gallery.relocate import move_gallery
from studio.gallery.store import GalleryStore
from studio.runtime.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Services:
    paths: StudioPaths
    settings: Settings
    store: GalleryStore
    worker: Worker

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the worker (cancelling its jobs) and close the gallery index."""
        stopped = self.worker.shutdown(timeout)
        if not stopped:
            log.warning("the worker did not stop within %.0f s", timeout)
        self.store.close()
        return stopped


class _LiveCatalog:
    """Reads the model folders setting at each lookup, so added folders count at once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def resolve(self, ref: str) -> ModelSpec:
        return make_catalog(self._settings).resolve(ref)

    def discover(self) -> list[ModelSpec]:
        """Every model and adapter the library finds now (a training run's default base, its name check)."""
        return make_catalog(self._settings).discover()

    def adapters(self) -> list[ModelSpec]:
        """The LoRAs and embeddings in the model folders (``<lora:NAME>`` and tokens find them here)."""
        return make_catalog(self._settings).adapters()

    @property
    def allow_pickle(self) -> set[str]:
        return make_catalog(self._settings).allow_pickle


def installation_credentials(paths: StudioPaths) -> ContentCredentials:
    """This installation's C2PA signer; its private keys stay in the data folder (mode 0600)."""
    return ContentCredentials(paths.data / "credentials", studio.APP_NAME, studio.__version__)


def make_catalog(settings: Settings) -> ModelCatalog:
    """Bundled models, the Hugging Face cache (HF_HUB_CACHE / HF_HOME), the user's folders and the
    data folder's ``models`` (where trained models are installed: always searched)."""
    folders = list(settings.get("model_folders"))
    own = installed_models_folder(settings)
    if own is not None and str(own) not in folders:
        folders.append(str(own))
    return ModelCatalog(
        resources_dir() / "models",
        folders,
        allow_pickle=settings.get("allow_pickle_models"),
        app_sources_off=settings.get("model_sources_off"),
    )


def installed_models_folder(settings: Settings) -> Path | None:
    """``<data>/models`` of the installation these settings belong to (trained models live in its
    ``trained/``), found from where the settings file is: the ``--data-dir`` layout (``ROOT/config``
    beside ``ROOT/data``) or the per-user folders. None for settings not read from a file."""
    if settings.path is None:
        return None
    config = Path(settings.path).parent
    user = StudioPaths.for_user()
    if config == user.config:
        return user.data / "models"
    if config.name == "config":
        return config.parent / "data" / "models"
    return None


def open_services(paths: StudioPaths) -> Services:
    paths.ensure()
    compile_cache.configure(paths.cache)  # before torch compiles anything: kernels survive a relaunch
    settings = Settings.load(paths.settings_file)
    store = GalleryStore(
        gallery_location(paths, settings),
        embed_prompts=lambda: bool(settings.get("embed_prompts")),
        sign_outputs=lambda: bool(settings.get("sign_outputs")),
        credentials=installation_credentials(paths),
        ai_training=lambda: str(settings.get("ai_training")),
    )
    worker = Worker(
        store=store,
        catalog=_LiveCatalog(settings),
        runtime_options=lambda: {
            name: settings.get(name) for name in ("device", "memory_mode", "compile_models", "precision")
        },
        log_file=str(paths.log_file),
        fingerprints=WeightFingerprints(paths.cache / "weight-digests.json"),
        data_dir=paths.data,
    )
    return Services(paths, settings, store, worker)


def gallery_location(paths: StudioPaths, settings: Settings) -> Path:
    """The gallery folder the settings choose (else the data folder's), after moving the gallery
    there when a move was asked for; a move that fails leaves the gallery where it was."""
    chosen = str(settings.get("gallery_folder") or "")
    root = Path(chosen).expanduser() if chosen else paths.gallery
    pending = str(settings.get("gallery_move_from") or "")
    if not pending:
        return root
    settings.set("gallery_move_from", "")
    source = Path(pending)
    try:
        if source.is_dir() and source.resolve() != root.resolve():
            move_gallery(source, root)
    except StudioError:
        log.exception("the gallery stays in %s", source)
        settings.set("gallery_folder", "" if source == paths.gallery else str(source))
        root = source
    try:
        settings.save()
    except OSError:
        log.warning("could not save the settings after moving the gallery", exc_info=True)
    return root


def setup_logging(paths: StudioPaths, *, verbose: bool = False) -> Path:
    """A rotating log file in the logs folder; the console gets warnings (all with verbose)."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_studio", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        paths.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    file_handler._studio = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if verbose:
        console = logging.StreamHandler()
        console.setLevel(logging.DEBUG)
        console._studio = True  # type: ignore[attr-defined]
        root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return paths.log_file
