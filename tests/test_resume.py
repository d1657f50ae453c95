"""Determinism and exact resume: same seed -> bit-identical weights; a run continued from
an epoch checkpoint ends bit-identical to an uninterrupted one."""

import numpy as np

from toolkit.data import ArrayData, build_augmenter
from toolkit.models import ModelSpec, build_model
from toolkit.registry import losses, optimizers, schedules
from toolkit.train import EarlyStopping, Trainer
from toolkit.train.checkpoint import EpochCheckpoint, resume_training

RNG = np.random.default_rng(0)
IMAGES = RNG.standard_normal((256, 1, 8, 8)).astype(np.float32)
LABELS = (IMAGES.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
TRAIN, VAL = ArrayData(IMAGES[:192], LABELS[:192]), ArrayData(IMAGES[192:], LABELS[192:])
SPEC = ModelSpec("mlp", (1, 8, 8), 2, {"hidden_sizes": [16, 8], "dropout": 0.3})


def make_trainer(epochs: int, callbacks=()) -> Trainer:
    model = build_model(SPEC, seed=1)
    optimizer = optimizers.build("adam", model, lr=0.01)
    return Trainer(
        model,
        losses.build("cross_entropy"),
        optimizer,
        schedules.build("cosine", 0.01, 6),
        epochs=epochs,
        batch_size=32,
        seed=2,
        progress=False,
        augment=build_augmenter({"shift": {"max_pixels": 1}, "noise": {"std": 0.1}}),
        callbacks=[EarlyStopping("val/loss", patience=50), *callbacks],
    )


def learned(history: dict) -> dict:
    """The history without wall-clock timings."""
    return {k: v for k, v in history.items() if not k.startswith("time/")}


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {
        f"{p}.{k}": v.copy()
        for p, layer in trainer.model.named_layers()
        for k, v in layer.params.items()
    }


def test_same_seed_gives_bit_identical_training():
    first, second = make_trainer(3), make_trainer(3)
    first.fit(TRAIN, VAL)
    second.fit(TRAIN, VAL)
    assert learned(first.history) == learned(second.history)
    for key, value in weights(first).items():
        assert np.array_equal(value, weights(second)[key]), key


def test_resumed_training_equals_uninterrupted(tmp_path):
    uninterrupted = make_trainer(6)
    uninterrupted.fit(TRAIN, VAL)

    path = tmp_path / "last.npz"
    interrupted = make_trainer(6, [EpochCheckpoint(path, dict)])
    interrupted.epochs = 2  # stop after epoch 2, as if killed during epoch 3
    interrupted.fit(TRAIN, VAL)

    resumed = make_trainer(6)
    meta = resume_training(resumed, path)
    assert meta["training"]["epoch"] == 2 and resumed.epoch == 2
    resumed.fit(TRAIN, VAL)
    assert learned(resumed.history) == learned(uninterrupted.history)
    for key, value in weights(uninterrupted).items():
        assert np.array_equal(value, weights(resumed)[key]), key
