"""The README's processor example works as printed."""

import os
import re

from processors import PROCESSORS, get_processor, load_processor_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_processor_example(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    code = re.search(r"```python\n(# my_processors\.py\n.*?)```", readme, re.S).group(1)
    assert len(code.splitlines()) < 30
    (tmp_path / "my_processors.py").write_text(code)
    data = tmp_path / "reviews"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.tsv").write_text("id\tstars\ttext\n7\t5\tGreat phone.\n8\t1\tBroke.\n")
    try:
        load_processor_module(str(tmp_path / "my_processors.py"))
        examples = get_processor("reviews").get_dev_examples(str(data))
    finally:
        PROCESSORS.pop("reviews", None)
    assert [(e.text_a, e.label) for e in examples] == [("Great phone.", "5"), ("Broke.", "1")]
