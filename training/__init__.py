"""The run: the training loop, evaluation, checkpoints, selection, early stopping, search,
run records, and the checks and command-line wrapper the programs share."""
