"""python3 -m rtda_client: the command line (cli.py)."""
import sys

from .cli import main

sys.exit(main())
