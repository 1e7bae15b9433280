"""The README documents every config key the settings table defines."""

import dataclasses
from pathlib import Path

from monitor.settings import SECTIONS, ChannelSettings, TacWebbuilderSettings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_documents_every_setting():
    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            assert f"`{section}.{spec.name}`" in README, f"README lacks {section}.{spec.name}"
    for spec in dataclasses.fields(ChannelSettings):
        assert f"`channels.<name>.{spec.name}`" in README
    for spec in dataclasses.fields(TacWebbuilderSettings):
        assert f"`compat.tac_webbuilder.{spec.name}`" in README


def test_readme_documents_every_query_name():
    from monitor.channels.registry import query_names

    for name in query_names():
        assert f"`{name}`" in README, f"README lacks query {name}"


def test_readme_gives_the_two_commands():
    assert "monitor demo" in README and "make test" in README
