"""`python -m sluice.sim`: run the upstream simulator."""

from sluice.sim.cli import main

if __name__ == "__main__":
    main()
