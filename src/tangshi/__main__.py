import sys

from tangshi.cli.main import main

sys.exit(main())
