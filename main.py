"""Run Studio from a source checkout: ``python main.py`` opens the window."""

import sys

from studio.app import main

if __name__ == "__main__":
    sys.exit(main())
