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


def test_registers_section_is_read_with_its_defaults_in_one_place():
    import datetime

    spec = spec_from_dict({"registers": {"id": "pnr", "end_dates": ["udvandret", "doed"],
                                         "end_of_data": datetime.date(2007, 12, 31),
                                         "follow_up_months": 48}})
    r = spec.registers
    assert (r.id, r.end_dates, r.end_of_data) == ("pnr", ("udvandret", "doed"), "2007-12-31")
    assert (r.to_inclusive, r.split_years, r.covariates) == (False, False, None)
    with pytest.raises(InputError, match="known keys in \\[registers\\]") as info:
        spec_from_dict({"registers": {"from": "fra"}})
    assert info.value.column == "registers.from"
    for key, value in [("follow_up_months", 0), ("split_years", "yes")]:
        with pytest.raises(InputError, match=f"registers.{key}"):
            spec_from_dict({"registers": {key: value}})


def test_crosswalk_keys_are_checked_and_absent_keys_keep_the_hash():
    from munirank.input.spec import spec_hash, spec_to_dict

    spec = spec_from_dict({"data": {"crosswalk": "cw.csv", "crosswalk_level": "old",
                                    "crosswalk_columns": ["gl", "ny", "dato"]}})
    assert spec.data.crosswalk_columns == ("gl", "ny", "dato")
    with pytest.raises(InputError, match="data.crosswalk_level"):
        spec_from_dict({"data": {"crosswalk_level": "newest"}})
    with pytest.raises(InputError, match="data.crosswalk_columns"):
        spec_from_dict({"data": {"crosswalk_columns": ["gl", "ny"]}})
    plain = spec_from_dict({})
    assert "registers" not in spec_to_dict(plain)
    assert "crosswalk_level" not in spec_to_dict(plain)["data"]
    # the hash of a spec without the new keys is what it was before they existed
    assert spec_hash(plain) == "068dc82d55b696aaff1d56564de7b8220d8f43b10b8b733d31ae492675ce0619"
