"""`python -m songbot` is the `songbot` command."""

import sys

from songbot.cli import main

sys.exit(main())
