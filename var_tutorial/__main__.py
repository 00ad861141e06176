"""``python -m var_tutorial <command>``: the command line lives in the cli package (cli/__init__.py
lists the commands and the module of each)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
