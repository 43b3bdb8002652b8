import sys

from emotionnet.cli.main import main

sys.exit(main())
