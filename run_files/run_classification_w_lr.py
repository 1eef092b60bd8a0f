"""AdapLeR stage C: train BERT + contribution predictors with adaptive length reduction
(the original's run_classification_w_lr.py flags; see docs/adapler.md).

    python ./run_files/run_classification_w_lr.py --TASK sst2 --GAMMA 0.005 --PHI 0.0005 \
        --SAVE_NAME run_1_sst2 --BATCH_SIZE 32 --DATA_SEED 22 --EPOCHS 5 --MAX_LENGTH 64 \
        --LEARNING_RATE 3e-5
"""

from adapler.cli import train_main

if __name__ == "__main__":
    train_main()
