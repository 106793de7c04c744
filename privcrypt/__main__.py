import sys

from privcrypt.cli import main

sys.exit(main())
