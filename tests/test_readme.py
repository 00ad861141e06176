"""The README's numbers come from results/*.json; this test keeps the two equal."""
import re
from pathlib import Path

from var_tutorial.results import tokenizer_table, training_table

README = Path(__file__).resolve().parents[1] / "README.md"


def block(name: str) -> str:
    text = README.read_text()
    m = re.search(rf"<!-- table:{name} -->\n(.*?)\n<!-- end table -->", text, re.S)
    assert m, f"README has no table block '{name}'"
    return m.group(1).strip()


def test_tokenizer_table_matches_results():
    assert block("tokenizer_cifar10") == tokenizer_table("tokenizer_cifar10").strip()


def test_training_table_matches_results():
    assert block("training") == training_table().strip()


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make quickstart" in text and "make test" in text
