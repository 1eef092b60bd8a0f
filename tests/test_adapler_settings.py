"""AdapLeR's settings objects: every flag of every stage's command line fills the field of the same
name with the same default, the CLI hands the stage the values it parsed, and a setting that does
not exist cannot reach a stage."""
import argparse
import dataclasses

import pytest

from adapler import pipeline
from adapler.cli import (evaluation_parser, finetune_parser, glue_train_main, saliency_parser,
                         train_parser)
from adapler.paths import TaskDirs
from adapler.settings import (EvaluationSettings, FinetuneSettings, GlueTrainSettings,
                              SaliencySettings, TrainSettings)
from tests.conftest import FIXTURES

REQUIRED = "required"
COMMANDS = [  # (parser, the settings it fills, the fields only the stage's other script has)
    (finetune_parser(), FinetuneSettings, set()),
    (saliency_parser(), SaliencySettings, set()),
    (train_parser(), TrainSettings, {"js_based_ratio", "soft_extract_type", "head_learning_rate"}),
    (train_parser(glue=True), GlueTrainSettings, {"eval_batch_size", "acc_steps"}),
    (evaluation_parser(), EvaluationSettings, set()),
    (evaluation_parser(glue=True), EvaluationSettings, {"split"}),
]
IDS = ["finetune", "saliency", "train", "glue_train", "evaluation", "glue_prediction"]


def flag_defaults(parser):
    """{field name: default} of the parsed flags (REQUIRED for a required flag); --help and the
    runner's --debug / --verbose never reach the namespace."""
    from common.owndata import FLAGS  # own data becomes the task and its folder, no field

    # --TASK is checked after the own-data flags (a file names the task instead), so argparse
    # does not require it, but the settings do.
    return {action.dest.lower(): REQUIRED if action.required or action.dest == "TASK"
            else action.default
            for action in parser._actions if action.default is not argparse.SUPPRESS
            and action.dest.lower() not in FLAGS}


def field_defaults(cls):
    return {field.name: REQUIRED if field.default is dataclasses.MISSING else field.default
            for field in dataclasses.fields(cls)}


@pytest.mark.parametrize("parser, cls, other_script", COMMANDS, ids=IDS)
def test_every_flag_fills_a_field_with_its_default(parser, cls, other_script):
    flags, fields = flag_defaults(parser), field_defaults(cls)
    assert {name: fields.get(name, "no field") for name in flags} == flags
    assert set(fields) - set(flags) == other_script


@pytest.mark.parametrize("cls, parser, other", [
    (TrainSettings, train_parser(), train_parser(glue=True)),
    (GlueTrainSettings, train_parser(glue=True), train_parser()),
    (EvaluationSettings, evaluation_parser(glue=True), evaluation_parser())])
def test_a_flag_of_the_other_script_keeps_its_default(cls, parser, other):
    """A field the command has no flag for holds the default the other script's flag has."""
    fields, own, others = field_defaults(cls), flag_defaults(parser), flag_defaults(other)
    missing = set(fields) - set(own)
    assert {name: fields[name] for name in missing} == {name: others[name] for name in missing}


def test_the_cli_hands_the_stage_what_it_parsed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr(pipeline, "run_adapler", lambda *args: seen.append(args))
    model = str(FIXTURES / "tiny_bert")
    glue_train_main(["--TASK", "sst2", "--MODEL_NAME_OR_PATH", model, "--DATA_DIR", str(tmp_path),
                     "--GAMMA", "0.5", "--JS_BASED_RATIO", "--ETA_LEARNING_RATE", "0.01",
                     "--MAX_TRAIN_EXAMPLES", "8", "--PAPER_FLOPS", "--DATA_SEED", "7"])
    (settings, dirs), = seen
    assert type(settings) is GlueTrainSettings
    assert (settings.gamma, settings.phi, settings.batch_size) == (0.5, 0.002, 16)
    assert (settings.divergence, settings.counting, settings.eta_rate) == ("js", "paper", 0.01)
    assert (settings.max_train_examples, settings.data_dir) == (8, str(tmp_path))
    assert settings.eval_current_lambda and not TrainSettings.eval_current_lambda
    assert dirs.base == TaskDirs("sst2", 7).base
    assert settings.flags()["GAMMA"] == 0.5 and settings.flags()["SAVE_NAME"] == "znorm_l2"


def test_a_setting_that_does_not_exist_cannot_reach_a_stage():
    with pytest.raises(TypeError, match="gama"):
        TrainSettings(task="sst2", gama=0.5)  # a misspelt flag
    with pytest.raises(TypeError):
        TrainSettings("sst2")  # keyword-only: no value lands in the wrong field
    settings = TrainSettings(task="sst2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.gamma = 0.5
    with pytest.raises(TypeError, match="gamma"):
        pipeline.run_adapler(settings, TaskDirs("sst2", 42), gamma=0.5)
    with pytest.raises(TypeError):
        dataclasses.replace(settings, eta=0.5)
    assert TrainSettings(task="sst2").eta_rate == 5e-4  # the original's hard-coded rate
