"""`python -m ltp ...`: the LTP command line (see ltp/cli.py)."""
from ltp.cli import main

main()
