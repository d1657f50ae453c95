"""The Trainer end to end on small problems: XOR, sin regression, early stopping,
divergence, checkpoints."""

import numpy as np
import pytest

from toolkit.data import load_dataset, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.registry import ConfigError, losses, optimizers
from toolkit.train import DivergenceError, EarlyStopping, Trainer, load_checkpoint, save_checkpoint
from toolkit.train.checkpoint import read_checkpoint


def xor_run(seed: int = 0):
    data = load_dataset("xor")
    spec = ModelSpec(
        "mlp",
        (2,),
        1,
        {
            "hidden_sizes": [4],
            "activation": "tanh",
            "output_activation": "sigmoid",
            "init": "xavier",
        },
    )
    model = build_model(spec, seed=seed, dtype="float64")
    trainer = Trainer(
        model,
        losses.build("mse"),
        optimizers.build("adam", model, lr=0.05),
        epochs=1500,
        batch_size=4,
        seed=seed,
        classification=False,
        progress=False,
    )
    trainer.fit(split_dataset(data, train=1.0, val=0.0, test=0.0, seed=seed).train)
    return model, trainer.predict(data.x_test), data.y_test


def test_xor_2_4_1_learns_all_four_patterns_deterministically():
    model, predictions, targets = xor_run()
    mse = float(np.mean((predictions - targets) ** 2))
    assert mse < 1e-3
    assert np.array_equal(predictions > 0.5, targets > 0.5)
    again, _, _ = xor_run()
    for (_, a), (_, b) in zip(model.named_layers(), again.named_layers(), strict=False):
        for key in a.params:
            assert np.array_equal(a.params[key], b.params[key])


def test_sin_regression_fits():
    data = load_dataset("sin", n_train=512)
    splits = split_dataset(data, train=1.0, val=0.0, test=0.0, seed=0)
    spec = ModelSpec("mlp", (1,), 1, {"hidden_sizes": [32, 32], "activation": "tanh"})
    model = build_model(spec, dtype="float64")
    trainer = Trainer(
        model,
        losses.build("mse"),
        optimizers.build("adam", model, lr=0.01),
        epochs=300,
        batch_size=64,
        classification=False,
        progress=False,
    )
    trainer.fit(splits.train)
    assert trainer.evaluate(splits.test)["test/loss"] < 0.01


def spirals_trainer(epochs=30, callbacks=(), lr=0.01):
    data = load_dataset("spirals")
    splits = split_dataset(data, train=0.8, val=0.2, test=0.0, seed=0)
    spec = ModelSpec(
        "mlp", data.sample_shape, data.num_outputs, {"hidden_sizes": [16], "activation": "relu"}
    )
    model = build_model(spec)
    trainer = Trainer(
        model,
        losses.build("cross_entropy"),
        optimizers.build("sgd", model, lr=lr),
        epochs=epochs,
        batch_size=32,
        callbacks=callbacks,
        progress=False,
    )
    return trainer, splits


def test_history_has_every_metric_per_epoch():
    trainer, splits = spirals_trainer(epochs=3)
    history = trainer.fit(splits.train, splits.val)
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "grad_norm/0.dense"):
        assert len(history[key]) == 3, key
    assert history["epoch"] == [1, 2, 3]


def test_early_stopping_stops_and_restores_the_best_weights():
    stopper = EarlyStopping(monitor="val/loss", patience=2, min_delta=10.0)
    trainer, splits = spirals_trainer(epochs=30, callbacks=[stopper])
    trainer.fit(splits.train, splits.val)
    assert trainer.epoch == 3  # epoch 1 is the best; 2 and 3 do not improve by 10
    assert stopper.best_epoch == 1
    assert trainer.evaluate(splits.val, "val")["val/loss"] == pytest.approx(stopper.best)


def test_early_stopping_rejects_a_metric_that_is_not_logged():
    trainer, splits = spirals_trainer(callbacks=[EarlyStopping(monitor="val/acc")])
    with pytest.raises(ConfigError, match="choose one of: train/loss, train/acc, lr"):
        trainer.fit(splits.train)


def test_divergence_stops_training_with_the_reason():
    trainer, splits = spirals_trainer(lr=1e30)
    with pytest.raises(DivergenceError, match="lower the optimizer's lr"):
        trainer.fit(splits.train, splits.val)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    spec = ModelSpec("mlp", (1, 28, 28), 10, {"hidden_sizes": [16, 8]})
    model = build_model(spec, seed=3)
    path = save_checkpoint(tmp_path / "ckpt.npz", model, {"model": spec.to_dict()})
    loaded, meta = load_checkpoint(path)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    assert np.array_equal(model.forward(x), loaded.forward(x))
    other = build_model(ModelSpec("mlp", (1, 28, 28), 10, {"hidden_sizes": [16, 4]}))
    from toolkit.train.checkpoint import load_weights

    arrays, _ = read_checkpoint(path)
    with pytest.raises(ConfigError, match=r"param/3.dense/W is \(16, 8\) in the checkpoint"):
        load_weights(other, arrays)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array("{}"), payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match="pickled objects, refused"):
        read_checkpoint(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    spec = ModelSpec("mlp", (4,), 2, {"hidden_sizes": [3], "activation": "relu"})
    path = save_checkpoint(tmp_path / "ckpt.npz", build_model(spec), {"model": spec.to_dict()})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="corrupt or truncated"):
        read_checkpoint(path)
