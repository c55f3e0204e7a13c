"""`python -m runtime ...` is the `facerestore` console script."""
import sys

from runtime.cli import main

sys.exit(main())
