"""`python -m cdc` runs the command line."""

from cdc.cli import main

if __name__ == "__main__":
    main()
