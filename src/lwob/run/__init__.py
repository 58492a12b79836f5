"""Running one job: model building, training (single process or distributed), checkpoints, evaluation."""
