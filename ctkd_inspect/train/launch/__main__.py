"""``python -m ctkd_inspect.train.launch [NAME]``: list the packaged launch configurations, or print one's path."""

import sys

from . import CONFIGS, config_path


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        for name, what in CONFIGS.items():
            print(f"{name:<11} {config_path(name)}  ({what})")
        return 0
    try:
        print(config_path(argv[0]))
    except Exception as exc:  # an unknown name: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
