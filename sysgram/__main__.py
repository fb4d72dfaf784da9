import sys

from sysgram.cli import main

sys.exit(main())
