"""AdapLeR stage B: store gradient x input saliencies of the 3 best fine-tuned epochs
(data/sals/<split>/sal_mat_wCLSSEPnoZ_<epoch>.npy + .ids.json).

    python ./tools/store_saliencies.py --TASK sst2 --DATA_SEED 22 --MAX_LENGTH 64 --BATCH_SIZE 4
"""

from adapler.cli import saliency_main

if __name__ == "__main__":
    saliency_main()
