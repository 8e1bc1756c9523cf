import pytest

from munirank.errors import InputError
from munirank.input.spec import DEFAULT_TUNE, SamplingSpec, spec_from_dict


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_tuning_steps_default_by_sampler(sampler):
    assert SamplingSpec(sampler=sampler).tuning_steps == DEFAULT_TUNE[sampler]
    assert SamplingSpec(sampler=sampler, tune=123).tuning_steps == 123
    assert SamplingSpec(sampler=sampler, tune=0).tuning_steps == 0


def test_nutpie_tunes_less_than_pymc_by_default():
    assert SamplingSpec().tuning_steps < SamplingSpec(sampler="pymc").tuning_steps


def test_spec_tune_is_read_and_checked():
    assert spec_from_dict({"sampling": {"tune": 700}}).sampling.tuning_steps == 700
    assert spec_from_dict({}).sampling.tune is None
    with pytest.raises(InputError, match="sampling.tune"):
        spec_from_dict({"sampling": {"tune": -1}})


def test_parametrisation_is_checked():
    assert spec_from_dict({"model": {"parametrisation": "centred"}}).model.parametrisation \
        == "centred"
    with pytest.raises(InputError, match="model.parametrisation"):
        spec_from_dict({"model": {"parametrisation": "sideways"}})
