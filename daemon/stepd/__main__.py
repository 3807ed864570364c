import sys

from stepd.cli import main

sys.exit(main())
