import sys

from thetanet.cli import main

sys.exit(main())
