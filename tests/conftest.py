"""Shared test set-up: quiet TensorFlow, this checkout's code in every process the tests start,
paths to fixtures and shared data."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
# pytest.ini's `pythonpath` puts the checkout first in this process; scripts the tests run by
# path (run_files/, tools/, tests/strategy_case.py) get it through the environment.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])

FIXTURES = REPO / "tests" / "fixtures"
# One tiny random HF model per backbone family (tools/make_fixtures.py, make_backbone_fixtures.py).
BACKBONES = ["tiny_bert", "tiny_albert", "tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert",
             "tiny_electra"]
# Optional real data (GLUE, AG News, HateXplain); tests that read it skip when it is absent.
SHARED_DATA = Path(os.environ.get("BERT_SPEEDUP_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def fixtures_dir():
    return FIXTURES
