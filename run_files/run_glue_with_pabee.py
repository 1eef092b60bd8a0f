"""PABEE on GLUE (the original's run_glue_with_pabee.py flags): train BERT/ALBERT with an
internal classifier per layer, evaluate with patience-based early exit. See docs/pabee.md."""

from pabee.cli import main

if __name__ == "__main__":
    main()
