"""AdapLeR stage D: evaluate a labelled split (metrics, COUNT, SPEEDUP (TOTAL)) and write
logs/flops_per_example.pickle.

    python ./run_files/run_classification_evaluation.py --TASK hatexplain --MAX_LENGTH 72 \
        --BATCH_SIZE 48 --MODEL_PATH PATH_TO_MODEL --LR_MODEL
"""

from adapler.cli import evaluation_main

if __name__ == "__main__":
    evaluation_main()
