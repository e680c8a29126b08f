"""`python -m deploytest`: run the deployment test (see deploytest.harness)."""

import sys

from deploytest.harness import main

sys.exit(main())
