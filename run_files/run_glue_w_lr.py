"""AdapLeR stage C with the GLUE script's flags and defaults (--JS_BASED_RATIO,
--HEAD_LEARNING_RATE, batch 16, GAMMA 1e-3, PHI 0.002); the original did not run.

    python ./run_files/run_glue_w_lr.py --TASK mrpc --GAMMA 0.005 --PHI 0.0005 \
        --SAVE_NAME run_1_mrpc --DATA_SEED 22
"""

from adapler.cli import glue_train_main

if __name__ == "__main__":
    glue_train_main()
