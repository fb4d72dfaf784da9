import sys

from sysgram.entry import main

sys.exit(main())
