"""Latent probes: how much class information a frozen encoder's codes hold.

A probe is a classifier trained on the codes of the labelled training images and tested on
the codes of the test images; the encoder is never updated. ``logistic`` (multinomial
logistic regression) and ``mlp`` are built from the toolkit itself (``dense`` layers,
``cross_entropy``, Adam, the :class:`~toolkit.train.Trainer`); ``svm`` is scikit-learn's
RBF support-vector classifier, when scikit-learn is installed (as in the reference study).
Codes are standardised with the training codes' per-feature mean and std first.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from toolkit.data import ArrayData
from toolkit.models import HasEncoder, ModelSpec, build_model
from toolkit.nn.layer import Sequential, forward_in_batches
from toolkit.registry import ConfigError, losses, optimizers
from toolkit.train import Trainer
from toolkit.train.metrics import accuracy

PROBE_KINDS = ("none", "logistic", "mlp", "svm")


@dataclass
class ProbeSettings:
    """What to train on the codes: the ``probe`` config node itself (its defaults live
    here only; ``toolkit.app.schemas`` stores it in Hydra's ConfigStore).

    Attributes:
        kind: ``logistic``, ``mlp``, ``svm`` or ``none`` (no probe).
        hidden: hidden layer sizes of the ``mlp`` probe (relu).
        dropout: dropout rate after each hidden layer of the ``mlp`` probe.
        epochs, batch_size, lr: training of the ``logistic``/``mlp`` probes (Adam).
        svm_c: inverse regularisation strength ``C`` of the ``svm`` probe.
        max_train: use at most this many training codes (``None``: all); an RBF SVM on
            54,000 codes takes minutes.
        seed: initialisation and data order of the toolkit probes.
    """

    kind: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    svm_c: float = 10.0
    max_train: Optional[int] = None  # noqa: UP045 (OmegaConf reads it: no "int | None")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ConfigError(f"probe.kind={self.kind!r} is not one of: {', '.join(PROBE_KINDS)}")
        for name, minimum in (("epochs", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"probe.{name} must be an integer >= {minimum}; got {value!r}")
        for name in ("lr", "svm_c"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"probe.{name} must be > 0; got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"probe.dropout must be in [0, 1); got {self.dropout!r}")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"probe.hidden must be integers >= 1; got {list(self.hidden)!r}")
        if self.kind == "svm" and importlib.util.find_spec("sklearn") is None:
            raise ConfigError(
                "probe.kind=svm needs scikit-learn (uv pip install scikit-learn); "
                "or use probe.kind=mlp"
            )
        if self.max_train is not None and self.max_train < 1:
            raise ConfigError(f"probe.max_train={self.max_train} must be >= 1 or null (all)")


def encoder_of(model: Sequential) -> Sequential | None:
    """The leading layers that map inputs to codes (``model.encoder()``, for a model that
    offers one: :class:`~toolkit.models.HasEncoder`), or ``None`` for a model without."""
    return model.encoder() if isinstance(model, HasEncoder) else None


def encode(encoder: Sequential, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Codes (N, D) of inputs ``x`` (N, ...), in evaluation mode, batch by batch."""
    return forward_in_batches(encoder, x, batch_size).reshape(len(x), -1)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both code sets scaled by the training codes' per-feature mean and std."""
    mean = train.mean(axis=0)
    std = train.std(axis=0) + 1e-8
    return (train - mean) / std, (test - mean) / std


def fit_probe(
    settings: ProbeSettings,
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    threads: int | None = 1,
) -> dict[str, float]:
    """Train the probe on (N, D) codes with (N,) labels (``threads``: BLAS threads of the
    toolkit probes); returns ``probe/train_acc`` and ``probe/test_acc`` in [0, 1]."""
    train_codes, train_labels = (
        train_codes[: settings.max_train],
        train_labels[: settings.max_train],
    )
    train_codes, test_codes = standardize(train_codes, test_codes)
    if settings.kind == "svm":
        from sklearn.svm import SVC

        svm = SVC(C=settings.svm_c, kernel="rbf").fit(train_codes, train_labels)
        return {
            "probe/train_acc": float(svm.score(train_codes, train_labels)),
            "probe/test_acc": float(svm.score(test_codes, test_labels)),
        }
    hidden = settings.hidden if settings.kind == "mlp" else []
    hparams = {"hidden_sizes": hidden, "activation": "relu", "dropout": settings.dropout}
    spec = ModelSpec("mlp", (train_codes.shape[1],), num_classes, hparams)
    classifier = build_model(spec, seed=settings.seed, dtype=train_codes.dtype)
    trainer = Trainer(
        classifier,
        losses.build("cross_entropy"),
        optimizers.build("adam", classifier, lr=settings.lr),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        progress=False,
        log_grad_norms=False,
        threads=threads,
    )
    trainer.fit(ArrayData(train_codes, train_labels))
    return {
        "probe/train_acc": accuracy(trainer.predict(train_codes), train_labels),
        "probe/test_acc": accuracy(trainer.predict(test_codes), test_labels),
    }
