"""bert-speedup: PoWER-BERT, AdapLeR, PABEE and LTP on one TensorFlow 2 / Keras 3 BERT backbone."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
REQUIREMENTS = [line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith("pytest")]

setup(
    name="bert-speedup",
    version="0.1.0",
    description="Faster BERT inference by adaptive computation: PoWER-BERT, AdapLeR, PABEE, LTP",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    license="Apache-2.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    package_data={"common": ["default_data/*/*.tsv"]},
    include_package_data=True,
    install_requires=REQUIREMENTS,
    # torch only reads `pytorch_model.bin` files and runs the backbone benchmark's PyTorch side.
    # onnx: `bert-speedup-export --format onnx` (tf2onnx converts, ONNX Runtime checks and runs).
    extras_require={"test": ["pytest", "pytest-xdist"], "torch": ["torch"],
                    "onnx": ["tf2onnx>=1.17", "onnxruntime"]},
    entry_points={"bert_speedup.methods": [
        "powerbert = powerbert",
        "adapler = adapler",
        "pabee = pabee",
        "ltp = ltp",
    ], "console_scripts": [
        "bert-speedup-demo = tools.demo:main",
        "bert-speedup-finetune = tools.finetune:main",
        "bert-speedup-benchmark = tools.benchmark:main",
        "bert-speedup-compare = tools.compare:main",
        "bert-speedup-flops = tools.flops_calculator:main",
        "bert-speedup-export = tools.export:main",
        "bert-speedup-predict = tools.predict:main",
        "powerbert = powerbert.cli:main",
        "pabee = pabee.cli:main",
        "ltp = ltp.cli:main",
        "adapler-finetune = adapler.cli:finetune_main",
        "adapler-saliencies = adapler.cli:saliency_main",
        "adapler-train = adapler.cli:train_main",
        "adapler-evaluate = adapler.cli:evaluation_main",
        "adapler-glue-predict = adapler.cli:glue_prediction_main",
        "adapler-infer = adapler.inference:main",
    ]},
)
