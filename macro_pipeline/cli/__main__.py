"""``python -m macro_pipeline.cli``: the ``macro-pipeline`` command."""

import sys

from macro_pipeline.cli import main

sys.exit(main())
