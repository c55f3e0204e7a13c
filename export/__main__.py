"""`python -m export ...` (also `facerestore export ...`)."""
import sys

from export.cli import main

sys.exit(main())
