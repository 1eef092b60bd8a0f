"""Fine-tuning and evaluation of the vanilla classifier, stage 1 of every method: `run(args)`,
what `tools/finetune.py` (`bert-speedup-finetune`) does with its parsed flags. The kept model,
`eval_results.json` and `run_log.jsonl` (RUN_LOG) go to --output_dir."""
import json
import os

from common.errors import UserError
from common.validation import check_checkpoint_task, check_model_files

RUN_LOG = "run_log.jsonl"


def run(args, log=print):
    """Fine-tune (or evaluate) and return the dev metrics of the kept model."""
    from common import checkpoints, training
    from common.data import default_data_dir, default_model_dir, load_split
    from common.files import write_result_text
    from common.runlog import RunLog
    from common.tasks import get_task
    from common.tokenization import load_tokenizer

    from common.seeding import set_seed

    set_seed(args.seed)  # before the model (head, dropout) is built
    task = get_task(args.task)
    data_dir = args.data_dir or default_data_dir()
    model_path = args.model or default_model_dir()
    max_length = args.max_length or task.max_length
    check_model_files(model_path)
    if args.eval_only:
        check_checkpoint_task(checkpoints.resolve_source(model_path).sidecar, task, model_path,
                              args.allow_other_task)
    if args.eval_only and args.pooling:
        trained = (checkpoints.resolve_source(model_path).sidecar or {}).get("pooling", "cls")
        if args.pooling != trained:
            raise UserError(f"{model_path} was trained with --pooling {trained}, not "
                            f"{args.pooling}; drop --pooling or pass --pooling {trained}")
    model, source, head_loaded = checkpoints.load_classifier(
        model_path, task.num_labels, max_length=max_length, pooling=args.pooling)
    tokenizer = load_tokenizer(source.folder, cased=args.cased)
    dev, _ = load_split(task, data_dir, "dev", tokenizer, max_length, log=log)
    if args.eval_only:
        if not head_loaded:
            raise UserError(f"{model_path} has no {task.glue_name} classification head; "
                            "fine-tune it first (drop --eval_only)")
        metrics = training.evaluate_classifier(model, task, dev, args.batch_size, log=log)
    else:
        train, _ = load_split(task, data_dir, "train", tokenizer, max_length, log=log,
                              seed=args.seed if args.train_limit else None,
                              limit=args.train_limit, keep_order=True)
        log(f"fine-tuning {model_path} on {task.glue_name}: {len(train['input_ids'])} train / "
            f"{len(dev['input_ids'])} dev rows, max length {max_length}")
        os.makedirs(args.output_dir, exist_ok=True)
        best = {}

        def save_best(epoch, record):
            best.clear()
            best.update(record)
            # `collapsed` (all dev predictions one class) makes the next stage refuse it.
            meta = checkpoints.checkpoint_meta(
                "vanilla", task, max_length, lower_case=not args.cased,
                training={"epoch": epoch, "seed": args.seed,
                          **({"collapsed": record["collapsed"]} if "collapsed" in record
                             else {})})
            checkpoints.save_checkpoint(model, args.output_dir, meta, tokenizer=tokenizer)

        training.fine_tune(model, task, train, dev,
                           training.TrainLoop.fine_tuning(args.epochs, args.batch_size,
                                                          args.seed),
                           learning_rate=args.learning_rate, save_best=save_best, log=log)
        metrics = {k: v for k, v in best.items() if k not in ("train_loss", "seconds")}
    if args.output_dir:
        # eval_results.json: the latest run's metrics (each run's own copy stays in
        # results/<run id>/); run_log.jsonl keeps those of every run too.
        history = RunLog(None, os.path.join(args.output_dir, RUN_LOG), echo=None)
        write_result_text(os.path.join(args.output_dir, "eval_results.json"),
                          json.dumps(metrics, indent=2), history.run_id)
        history.event("evaluation", model=model_path, task=task.name, eval_only=args.eval_only,
                      metrics=metrics)
    log("dev: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in metrics.items() if not isinstance(v, dict)))
    return metrics
