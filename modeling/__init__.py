"""Model, training, evaluation and prediction for BERT sequence classification."""
