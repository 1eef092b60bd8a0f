"""AdapLeR stage A for any GLUE task (the original's run_glue_bert.py, which wrote its folders
without the seed level; here the same seed-level tree as every other stage).

    python ./run_files/run_glue_bert.py --TASK mrpc --MAX_LENGTH 128 --DATA_SEED 22
"""

from adapler.cli import finetune_main

if __name__ == "__main__":
    finetune_main()
