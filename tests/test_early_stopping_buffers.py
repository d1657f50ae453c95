"""Early stopping restores the best epoch's whole state: weights and batch norm's running
statistics (it once restored only the weights, leaving the last epoch's statistics)."""

import numpy as np

from toolkit.data import ArrayData
from toolkit.models import ModelSpec, build_model
from toolkit.nn.losses import CrossEntropy
from toolkit.optim.optimizers import Adam
from toolkit.train import EarlyStopping, Trainer


class Snapshots:
    """Records every layer's params and buffers after each epoch."""

    def __init__(self):
        self.by_epoch = {}

    def on_fit_start(self, trainer):
        pass

    def on_fit_end(self, trainer, logs):
        pass

    def state_dict(self):
        return {}, {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.by_epoch[epoch] = {
            f"{path}/{kind}/{k}": v.copy()
            for path, layer in trainer.model.named_layers()
            for kind, arrays in (("param", layer.params), ("buffer", layer.buffers))
            for k, v in arrays.items()
        }


def test_the_best_epochs_running_statistics_come_back_with_its_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    train, val = ArrayData(x[:160], y[:160]), ArrayData(x[160:], y[160:])
    hparams = {"channels": [4, 4], "batchnorm": True, "hidden": 8}
    model = build_model(ModelSpec("cnn", (1, 8, 8), 2, hparams), seed=0)
    snapshots = Snapshots()
    stopping = EarlyStopping(monitor="val/loss", patience=2)
    # lr 0.5: the validation loss soon gets worse, so it stops early
    optimizer = Adam(model, lr=0.5)
    trainer = Trainer(
        model,
        CrossEntropy(),
        optimizer,
        epochs=30,
        batch_size=32,
        callbacks=[snapshots, stopping],
        progress=False,
    )
    trainer.fit(train, val)
    assert stopping.best_epoch < trainer.epoch  # stopped after getting worse
    best = snapshots.by_epoch[stopping.best_epoch]
    assert any("/buffer/" in key for key in best)
    for path, layer in model.named_layers():
        for kind, arrays in (("param", layer.params), ("buffer", layer.buffers)):
            for k, v in arrays.items():
                np.testing.assert_array_equal(v, best[f"{path}/{kind}/{k}"])
