"""`python -m personasim`: the command-line tool."""

from __future__ import annotations

from personasim.cli import main

if __name__ == "__main__":
    main()
