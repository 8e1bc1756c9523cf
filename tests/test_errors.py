"""One-line messages of :class:`munirank.errors.InputError`."""

from munirank.errors import InputError


def test_data_problems_name_file_column_and_rows():
    err = InputError("not a number", file="spells.csv", column="age", rows=range(1, 8))
    assert str(err) == "spells.csv, column 'age', rows 1, 2, 3, 4, 5 (+2 more): not a number"
    assert err.option is None


def test_a_command_line_option_is_named_as_an_option_not_a_column():
    err = InputError("unknown preset 'bad'; known: tiny", option="--preset")
    assert str(err) == "option --preset: unknown preset 'bad'; known: tiny"
    assert err.option == "--preset" and err.column is None


def test_the_message_is_one_line():
    assert "\n" not in str(InputError("a\nlibrary's\n  message", option="--ci"))
