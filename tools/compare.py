"""`bert-speedup-compare`: every method's accuracy-vs-speed front on one task, in one command
(the engine and its flags: common/compare/engine.py; docs/compare.md).

    python tools/compare.py --task sst-2 --output_dir runs/compare/sst2 --budget quick
"""
from common.compare.engine import main

if __name__ == "__main__":
    main()
