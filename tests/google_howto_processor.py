# selfsim_processor.py: the sentence-similarity processor of Google's run_classifier how-to
import os
import random

from processors import PROCESSORS, DataProcessor, InputExample
from processors import tokenization


class SelfProcessor(DataProcessor):
    """Processor for the sentence-similarity data set: label,text_a,text_b rows."""

    def get_train_examples(self, data_dir):
        lines = self._read_csv(os.path.join(data_dir, "train.csv"))
        random.seed(0)
        random.shuffle(lines)
        return self._create_examples(lines, "train")

    def get_dev_examples(self, data_dir):
        return self._create_examples(
            self._read_csv(os.path.join(data_dir, "dev.csv")), "dev")

    def get_test_examples(self, data_dir):
        return self._create_examples(
            self._read_csv(os.path.join(data_dir, "test.csv")), "test")

    def get_labels(self):
        return ["0", "1"]

    def _create_examples(self, lines, set_type):
        examples = []
        for (i, line) in enumerate(lines):
            guid = "%s-%s" % (set_type, i)
            text_a = tokenization.convert_to_unicode(line[1])
            text_b = tokenization.convert_to_unicode(line[2])
            if set_type == "test":
                label = "0"
            else:
                label = tokenization.convert_to_unicode(line[0])
            examples.append(
                InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
        return examples


PROCESSORS["selfsim"] = SelfProcessor
