"""WGAN with the report's settings: a critic without sigmoid or logs, its weights clipped to
[-c, c] after every update, RMSprop at lr 1e-4 for 200 epochs. `--help` lists every flag."""

import sys

from harness.main import main

if __name__ == "__main__":
    sys.exit(main("wgan"))
