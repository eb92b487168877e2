"""WGAN-GP with the report's settings: no clipping, a gradient penalty of weight 0.001 on random
interpolates, RMSprop at lr 1e-4 for 200 epochs. `--help` lists every flag."""

import sys

from harness.main import main

if __name__ == "__main__":
    sys.exit(main("wgan_gp"))
