"""`python -m facerestore ...` is the `facerestore` console script."""
import sys

from facerestore.cli import main

sys.exit(main())
