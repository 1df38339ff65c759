"""The README's quick start and processor example work as printed."""

import os
import re

from processors import PROCESSORS, get_processor, load_processor_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name: str) -> str:
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def test_readme_starts_with_the_two_commands_ci_runs():
    """The quick start's first block is the two scripts (tests/test_scripts.py tests them;
    .ci/run runs each twice, as it is printed)."""
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", read("README.md"), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands == ["scripts/quickstart.sh", "scripts/test.sh"]
    ci = [line.strip() for line in read(".ci/run").splitlines()]
    assert "twice scripts/quickstart.sh" in ci and "twice scripts/test.sh" in ci


def test_readme_processor_example(tmp_path):
    readme = read("README.md")
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
