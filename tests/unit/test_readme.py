from pathlib import Path

from kernel.config import SETTINGS, markdown_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_carries_the_current_configuration_table():
    assert markdown_table() in README, "README's configuration table is stale: paste `gatehouse config`"


def test_every_setting_is_documented():
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in README]
    assert not missing
