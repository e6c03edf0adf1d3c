"""What the runs say: the value landscape, the fairness audit, the headroom, the noise floor, the folds, the worth."""
