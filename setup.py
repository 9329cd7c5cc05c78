"""Packaging for pathmnist: plain setuptools, as psf/requests does it."""

from setuptools import find_packages, setup

setup(
    name="pathmnist",
    version="0.1.0",
    description=(
        "A test-driven teaching codebase: a from-scratch ResNet-18 on PathMNIST "
        "(MedMNIST colorectal histology), every hand-written part checked against "
        "its reference library."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["pathmnist", "pathmnist.*"]),
    install_requires=[
        # 2.4: torch.cuda.is_bf16_supported(including_emulation=...), fused SGD, and
        # torch.backends.cpu.get_cpu_capability; the lent GPU machines run 2.11.
        "torch>=2.4",
        "torchvision>=0.19",
        "medmnist",
        "numpy",
        "matplotlib",
        "tqdm",
        # Lesson 2's last step: Optuna keeps a study in a database (SQLite by default);
        # psycopg (3) is the PostgreSQL driver SQLAlchemy 2.1 takes for postgresql:// URLs.
        "optuna>=5.1",  # heartbeat_stale_trial_callback, PED-ANOVA importances
        "psycopg[binary]",
    ],
    extras_require={
        # Oracles (torchvision is already required; scikit-learn is the metrics oracle)
        # and the tools the tests and tox environments use.
        "dev": [
            "pytest",
            "hypothesis",
            "tox",
            "ruff",
            "scikit-learn",  # metrics, class weights, halving schedule
            "scikit-image",  # rgb2hed / hed2rgb
            "torchstain",  # Macenko normalisation
            "captum",  # LayerGradCam
            "grad-cam",  # pytorch_grad_cam.GradCAM
            "torchmetrics",  # MulticlassCalibrationError
            "statsmodels",  # Wilson interval, exact McNemar
            "scipy",  # t interval, bootstrap, minimize_scalar
            "kornia",  # focal loss
            "mkdocs",
            "mkdocs-material",
            "mkdocstrings[python]",
            "markdown-exec",
        ],
    },
)
