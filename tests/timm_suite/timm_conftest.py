"""conftest.py of the timm suite run folder (copied there by run_timm_suite.py).

Importing ddrnet_zoo registers the DDRNet models with timm before timm's test_models.py
is collected, so its ``list_models()`` parameter lists include them.
"""

import ddrnet_zoo  # noqa: F401
