"""AdapLeR stage A: fine-tune BERT on a task, saving every epoch and logs/ft_logs.json
(the original's run_classification_bert.py flags; see docs/adapler.md).

    python ./run_files/run_classification_bert.py --TASK sst2 --MAX_LENGTH 64 --DATA_SEED 22
"""

from adapler.cli import finetune_main

if __name__ == "__main__":
    finetune_main()
