import sys

from gridnoise.cli import main

sys.exit(main())
