"""`python -m service.imports`: the loyalty-import command (service.imports.cli)."""

import sys

from service.imports.cli import main

sys.exit(main())
