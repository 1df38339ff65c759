"""Issue 32's warnings as rows of the bad-input table: data on which a metric means nothing
still trains and evaluates (exit 0), and the run says so in one warning line."""


from bad_input_table import STSB_HEAD, STSB_ROW, Case, table

TRAIN_EVAL = ("--do_train", "--do_eval", "--num_train_epochs=1")
CASES = [
    Case("mrpc-dev-of-one-class", "dev has one class only (0): F1 is undefined there "
         "(reported as 0.0)", TRAIN_EVAL, task="mrpc", code=0, quiet=False),
    Case("mrpc-train-of-one-class", "train has one class only (1): the model can only learn "
         "to predict it", TRAIN_EVAL, task="mrpc", code=0, quiet=False),
    Case("stsb-constant-dev-targets", "dev targets are all 3: correlation is undefined "
         "(reported as 0.0)", TRAIN_EVAL, task="sts-b", code=0, quiet=False,
         files={"dev.tsv": STSB_HEAD + "score\n" + STSB_ROW.format("3.0") * 2}),
    Case("stsb-constant-train-targets", "train targets are all 4.5: the model can only learn "
         "that score", TRAIN_EVAL, task="sts-b", code=0, quiet=False,
         files={"dev.tsv": STSB_HEAD + "score\n" + STSB_ROW.format("1.0")
                + STSB_ROW.format("2.0")}),
]


results, test_degenerate_data_is_named = table(CASES, "degenerate")
