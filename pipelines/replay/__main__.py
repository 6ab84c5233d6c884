"""``python -m pipelines.replay [--quick]`` (``make demo``): what ``-m pipelines.replay.demo`` runs."""

import sys

from pipelines.replay.demo import main

if __name__ == "__main__":
    # argparse would otherwise introduce itself as "__main__.py" in --help
    sys.exit(main(prog="python -m pipelines.replay"))
