"""The Hydra application: config store, command line and the training job."""
