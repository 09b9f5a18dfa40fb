"""``python -m artlab.cli`` (how torchrun launches it: ``torchrun ... -m artlab.cli train ...``)."""

import sys

from artlab.cli.commands import main

sys.exit(main())
