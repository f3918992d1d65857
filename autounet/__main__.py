"""``python -m autounet``: the same program as the ``autounet`` command."""

import sys

from autounet.cli import main

sys.exit(main())
