"""The public API: one function per command, each imported only when first used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import munirank
from munirank import api


@pytest.mark.parametrize("name", sorted(api.EXPORTS))
def test_every_export_resolves_to_its_documented_object(name):
    module, attribute = api.EXPORTS[name]
    obj = getattr(munirank, name)
    assert obj is getattr(sys.modules[module], attribute)
    assert obj.__doc__ and name in munirank.__all__ and name in dir(api)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no_such_command"):
        munirank.no_such_command  # noqa: B018


def test_importing_munirank_and_the_cli_loads_no_model_library():
    code = ("import sys, munirank, munirank.cli; "
            "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie', 'arviz_stats', 'lifelines')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
