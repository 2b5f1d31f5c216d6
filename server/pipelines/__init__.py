"""Shop pipelines: each composes repository models and kernels into one endpoint's answer."""
