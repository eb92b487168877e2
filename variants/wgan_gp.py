"""WGAN-GP with the report's settings: no clipping, a gradient penalty of weight 0.001 on random
interpolates, RMSprop at lr 1e-4 for 200 epochs. `--help` lists every flag."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lab5  # noqa: E402

if __name__ == "__main__":
    sys.exit(lab5.main("wgan_gp"))
