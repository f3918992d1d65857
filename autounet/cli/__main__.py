"""``python -m autounet.cli`` (as torchrun starts it): the ``autounet`` program."""

import sys

from autounet.cli import main

sys.exit(main())
