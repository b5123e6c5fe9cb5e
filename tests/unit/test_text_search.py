from microcommerce.storage.text_search import contains_any, contains_pattern


def test_pattern_is_case_folded_and_takes_wildcards_literally():
    assert contains_pattern("Dune") == "%dune%"
    assert contains_pattern("50%_off!") == "%50!%!_off!!%"


def test_clause_matches_any_column():
    clause, params = contains_any(("name", "description"), "Lamp")
    assert clause == "(LOWER(name) LIKE ? ESCAPE '!' OR LOWER(description) LIKE ? ESCAPE '!')"
    assert params == ["%lamp%", "%lamp%"]
