"""Lets `python -m provscan` behave like the `provscan` console script."""

from provscan.cli import main

if __name__ == "__main__":
    main()
