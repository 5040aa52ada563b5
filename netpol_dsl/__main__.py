import sys

from netpol_dsl.cli import main

sys.exit(main())
