"""The problem types a task's head can have: transformers' `problem_type` names, which
set the loss, the metrics and what the outputs hold."""

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
