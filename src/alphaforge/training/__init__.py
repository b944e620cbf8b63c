"""Training: a model definition, its dataset assembled, cross-validated, fitted, stored, tracked; and prediction from what was stored."""
