"""Small counts blanked, also where they could be derived from a shown total."""

from munirank.output.disclosure import blank_small_count, blank_small_parts


def test_a_lone_small_part_takes_the_next_smallest_with_it():
    assert blank_small_count(4, min_cell=5) is None and blank_small_count(5, min_cell=5) == 5
    parts = {"event": 120, "move": 3, "gap": 40, "end": 900}
    assert blank_small_parts(parts, min_cell=5) == {"event": 120, "move": None, "gap": None,
                                                    "end": 900}
    two = {"event": 120, "move": 3, "gap": 0, "end": 900}  # two blanked: neither derivable
    assert blank_small_parts(two, min_cell=5) == {"event": 120, "move": None, "gap": None,
                                                  "end": 900}
    assert blank_small_parts({"a": 10, "b": 20}, min_cell=5) == {"a": 10, "b": 20}
    assert blank_small_parts({"a": 1}, min_cell=0) == {"a": 1}
