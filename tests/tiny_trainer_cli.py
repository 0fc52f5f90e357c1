"""``studio`` with the tiny trainer as the text trainer: how the command-line tests (and a person
trying ``studio train text`` before the real text trainer is merged) run it in a process of its own.

    PYTHONPATH=.:tests python tests/tiny_trainer_cli.py train text --data FOLDER --name NAME --base MODEL
"""

import sys

from tiny_trainer import use_tiny_trainer

use_tiny_trainer()

from studio.app import main  # noqa: E402

sys.exit(main())
