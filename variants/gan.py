"""GAN with the report's settings: the minimax objective E[log D(x)] + E[log(1 - D(G(z)))],
RMSprop at lr 1e-4 for 200 epochs. `--help` lists every flag."""

import sys

from harness.main import main

if __name__ == "__main__":
    sys.exit(main("gan"))
