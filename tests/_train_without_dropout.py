"""`artlab train` with the heads' dropout off: then a run on one process and the same run on two torchrun processes
make the same updates (tests/test_distributed.py). Dropout masks are drawn per process, so with it on they differ."""

import sys

from artlab.cli import commands as cli
from artlab.model import classifier as models

models.Head.__init__.__defaults__ = (0.0,)  # Head(kind, in_dim, num_classes, dropout=0.2)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
