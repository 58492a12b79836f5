"""Planning: configuration, registries' config checks, what reruns, SLURM placement and job entry. Imports no torch."""
