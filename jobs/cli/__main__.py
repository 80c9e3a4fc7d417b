"""``python -m jobs.cli``: the ``trainboard`` command."""

import sys

from jobs.cli import main

sys.exit(main())
