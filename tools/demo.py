"""`bert-speedup-demo`: `bert-speedup-compare --budget quick` on the bundled SST-2 sample with
MiniLM, offline, and one short table (common/compare/demo.py).

    python tools/demo.py --work_dir runs/demo --methods powerbert,pabee
"""
from common.compare.demo import main

if __name__ == "__main__":
    main()
