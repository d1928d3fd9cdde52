"""``python -m core ...`` → ``core.cli.main()``."""

import sys

from core.cli import main

sys.exit(main())
