"""The Hydra application: config store, command line and the run lifecycle."""

import os

from omegaconf import OmegaConf

# Output folders are unique per run even when runs start in the same second:
# outputs/<date>/<time>-<process id> (config.yaml). Registered on import, before Hydra
# composes, in the launching process and in every launcher worker.
if not OmegaConf.has_resolver("toolkit_pid"):
    OmegaConf.register_new_resolver("toolkit_pid", lambda: str(os.getpid()), use_cache=True)
