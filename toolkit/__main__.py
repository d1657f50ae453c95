"""``python -m toolkit``: the Hydra entry point (see toolkit.app.cli)."""

from toolkit.app.cli import main

if __name__ == "__main__":
    main()
