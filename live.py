"""The live page: lab5 training in your browser as you watch and steer it (harness/server.py).

python live.py                 # all three variants side by side, the page opened
python live.py --variant gan   # one of them
python live.py --no-browser --port 8000
"""

import sys

from harness.server import main

if __name__ == "__main__":
    sys.exit(main())
