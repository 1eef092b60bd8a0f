"""Shared test set-up: quiet TensorFlow, repo on sys.path, paths to fixtures and shared data."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
# One tiny random HF model per backbone family (tools/make_fixtures.py, make_backbone_fixtures.py).
BACKBONES = ["tiny_bert", "tiny_albert", "tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert",
             "tiny_electra"]
# Optional real data (GLUE, AG News, HateXplain); tests that read it skip when it is absent.
SHARED_DATA = Path(os.environ.get("BERT_SPEEDUP_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def fixtures_dir():
    return FIXTURES
