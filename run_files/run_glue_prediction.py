"""AdapLeR stage D for GLUE: predict the test split into logs/glue_prediction_<model>_test.tsv,
with COUNT and SPEEDUP (TOTAL).

    python ./run_files/run_glue_prediction.py --TASK sst2 --MAX_LENGTH 64 --LR_MODEL \
        --MODEL_PATH PATH_TO_MODEL
"""

from adapler.cli import glue_prediction_main

if __name__ == "__main__":
    glue_prediction_main()
