"""``python -m ddrnet_zoo.convert``: same as ``ddrnet-convert``."""

import sys

from .cli import main

sys.exit(main())
