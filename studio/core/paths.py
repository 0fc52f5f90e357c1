"""Where Studio keeps its files: per-user folders, or everything under one folder for a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "STUDIO_DATA_DIR"
_APP_DIR_NAME = "Studio"


@dataclass(frozen=True)
class StudioPaths:
    config: Path
    data: Path
    cache: Path
    logs: Path

    @property
    def gallery(self) -> Path:
        return self.data / "gallery"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    @property
    def log_file(self) -> Path:
        return self.logs / "studio.log"

    @classmethod
    def under(cls, root: Path) -> StudioPaths:
        """Everything in one folder: what ``--data-dir`` and ``STUDIO_DATA_DIR`` give."""
        root = Path(root).expanduser().resolve()
        return cls(config=root / "config", data=root / "data", cache=root / "cache", logs=root / "logs")

    @classmethod
    def for_user(cls) -> StudioPaths:
        return cls(
            config=Path(platformdirs.user_config_dir(_APP_DIR_NAME, appauthor=False)),
            data=Path(platformdirs.user_data_dir(_APP_DIR_NAME, appauthor=False)),
            cache=Path(platformdirs.user_cache_dir(_APP_DIR_NAME, appauthor=False)),
            logs=Path(platformdirs.user_log_dir(_APP_DIR_NAME, appauthor=False)),
        )

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike[str] | None = None) -> StudioPaths:
        """``data_dir`` if given, else ``$STUDIO_DATA_DIR``, else the user's folders."""
        chosen = data_dir or os.environ.get(DATA_DIR_ENV)
        return cls.under(Path(chosen)) if chosen else cls.for_user()

    def ensure(self) -> StudioPaths:
        for folder in (self.config, self.data, self.cache, self.logs, self.gallery):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def resources_dir() -> Path:
    """The ``resources/`` folder shipped beside the ``studio`` package."""
    return Path(__file__).resolve().parents[2] / "resources"
