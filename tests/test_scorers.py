"""The generation track's scorers (lwob.tasks.scorers), against hand-worked examples."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lwob.errors import ConfigError, DataError
from lwob.tasks import scorers
from lwob.tasks.scorers import gsm8k as gsm8k_mod
from lwob.tasks.scorers import sql as sql_mod
from lwob.tasks.scorers import viggo as viggo_mod

REPO = Path(__file__).resolve().parents[1]


def score(name, predictions, references, context=None, **options):
    return scorers.get(name).score(predictions, references, context or {}, options)


# --- registry and interface ----------------------------------------------------------------

def test_registry_names_and_unknown_scorer():
    assert {"exact_match", "viggo", "sql", "gsm8k"} <= set(scorers.known())
    assert scorers.get("gsm8k").name == "gsm8k"
    with pytest.raises(ConfigError, match="unknown scorer 'bleu'"):
        scorers.get("bleu")


def test_importing_the_registry_is_light():
    code = ("import sys, lwob.tasks.scorers as s; s.known(); "
            "print(sorted(m for m in ('torch', 'sqlglot', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["exact_match", "viggo", "sql", "gsm8k"])
def test_empty_eval_set(name):
    metrics, parts = score(name, [], [])
    for m in scorers.get(name).metrics:
        assert metrics[m] is None
    assert metrics["n"] == 0
    assert len(parts) == 0 and "correct" in parts.columns


@pytest.mark.parametrize("name", ["exact_match", "viggo", "sql", "gsm8k"])
def test_per_example_frame_leaves_texts_to_the_task_kind(name):
    _, parts = score(name, ["x", "y"], ["x", "z"])
    assert len(parts) == 2 and parts["correct"].dtype == "float64"
    assert not {"idx", "prompt", "generation", "reference", "stop_reason", "new_tokens"} & set(parts.columns)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score("exact_match", ["a", "b"], ["a"])


# --- options -------------------------------------------------------------------------------

def test_check_options_messages():
    with pytest.raises(ConfigError, match=r"^config key 'tasks\.gsm8k\.scorer_options\.answer': 'loose' is not one "
                                          r"of strict, flexible$"):
        scorers.get("gsm8k").check_options("gsm8k", {"answer": "loose"})
    with pytest.raises(ConfigError, match=r"'tasks\.mr\.scorer_options\.metric': not an option of scorer 'viggo' "
                                          r"\(it takes none\)"):
        scorers.get("viggo").check_options("mr", {"metric": "slot_f1"})
    with pytest.raises(ConfigError, match=r"'tasks\.q\.scorer_options\.timeout': not an option of scorer 'sql' "
                                          r"\(known: databases, timeout_s, metric\)"):
        scorers.get("sql").check_options("q", {"timeout": 3})
    with pytest.raises(ConfigError, match=r"'tasks\.q\.scorer_options\.metric': execution_match needs "
                                          r"'tasks\.q\.scorer_options\.databases'"):
        scorers.get("sql").check_options("q", {"metric": "execution_match"})
    with pytest.raises(ConfigError, match=r"'tasks\.q\.scorer_options\.metric': 'f1' is not one of "
                                          r"exact_match, execution_match"):
        scorers.get("sql").check_options("q", {"metric": "f1"})
    with pytest.raises(ConfigError, match=r"'tasks\.q\.scorer_options\.timeout_s': expected a number of seconds > 0"):
        scorers.get("sql").check_options("q", {"databases": "db", "timeout_s": 0})
    with pytest.raises(ConfigError, match=r"'tasks\.q\.scorer_options\.databases': expected the path"):
        scorers.get("sql").check_options("q", {"databases": 3})
    with pytest.raises(ConfigError, match=r"'tasks\.t\.scorer_options': expected a mapping"):
        scorers.get("exact_match").check_options("t", ["x"])
    # valid ones pass
    scorers.get("gsm8k").check_options("gsm8k", {"answer": "strict"})
    scorers.get("sql").check_options("q", {"databases": "db", "timeout_s": 2.5, "metric": "execution_match"})
    scorers.get("viggo").check_options("mr", {})


def test_headlines_and_context_columns():
    assert scorers.get("gsm8k").headline({}) == "flexible_accuracy"
    assert scorers.get("gsm8k").headline({"answer": "strict"}) == "strict_accuracy"
    assert scorers.get("sql").headline({}) == "exact_match"
    assert scorers.get("sql").headline({"databases": "d", "metric": "execution_match"}) == "execution_match"
    assert scorers.get("viggo").headline({}) == "exact_match"
    assert scorers.get("sql").context_columns_for({}) == ()
    assert scorers.get("sql").context_columns_for({"databases": "d"}) == ("db_id",)
    assert scorers.get("viggo").context_columns_for({}) == ()


# --- exact_match ---------------------------------------------------------------------------

def test_exact_match_normalises_whitespace_only():
    metrics, parts = score("exact_match", ["  the  cat\n sat ", "The cat", "a b"], ["the cat sat", "the cat", "ab"])
    assert parts["correct"].tolist() == [1.0, 0.0, 0.0]
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["n"] == 3


# --- viggo ---------------------------------------------------------------------------------

VIGGO_REFS = [
    "inform(name[Tomb Raider], rating[good], genres[action-adventure, shooter])",
    "give_opinion(name[SpellForce 3], rating[poor], genres[real-time strategy, role-playing], "
    "player_perspective[bird view])",
    "confirm(name[Hellblade], release_year[2017])",
    "request(specifier[exciting], genres[shooter])",
]
VIGGO_PREDS = [
    # other attribute order, other list order, other case and spacing: exact match
    "inform(genres[shooter,  Action-Adventure], name[tomb raider], rating[good])",
    # two of five pairs missing: P = 3/3, R = 3/5, F1 = 0.75
    "give_opinion(name[SpellForce 3], rating[poor], genres[real-time strategy])",
    # wrong function type, one pair too many: P = 2/3, R = 2/2, F1 = 0.8
    "suggest(name[Hellblade], release_year[2017], developer[Ninja Theory])",
    # cut off before the closing parenthesis: a parse error
    "request(specifier[exciting], genres[shooter]",
]


def test_viggo_hand_worked():
    metrics, parts = score("viggo", VIGGO_PREDS, VIGGO_REFS)
    assert parts["exact_match"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert parts["function_correct"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert parts["slot_precision"].tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.0])
    assert parts["slot_recall"].tolist() == pytest.approx([1.0, 0.6, 1.0, 0.0])
    assert parts["slot_f1"].tolist() == pytest.approx([1.0, 0.75, 0.8, 0.0])
    assert parts["parsed"].tolist() == [True, True, True, False]
    assert parts["correct"].tolist() == [1.0, 0.0, 0.0, 0.0]
    # micro over pairs: matched 4+3+2+0 = 9, predicted 4+3+3+0 = 10, reference 4+5+2+2 = 13
    assert metrics["exact_match"] == 0.25
    assert metrics["function_accuracy"] == 0.5
    assert metrics["slot_precision"] == pytest.approx(0.9)
    assert metrics["slot_recall"] == pytest.approx(9 / 13)
    assert metrics["slot_f1"] == pytest.approx(18 / 23)
    assert metrics["parse_errors"] == 1 and metrics["reference_parse_errors"] == 0 and metrics["n"] == 4


def test_viggo_list_items_count_separately():
    # one of the two genres wrong: P = R = 1/2 over the genres, plus the name pair: 2/3 each
    metrics, parts = score("viggo", ["inform(name[X], genres[shooter, puzzle])"],
                           ["inform(name[X], genres[shooter, strategy])"])
    assert parts["exact_match"].tolist() == [0.0]
    assert metrics["slot_precision"] == pytest.approx(2 / 3)
    assert metrics["slot_recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("text", ["inform name[X]", "inform(name[X],)", "inform(name X)", "", "inform(name[X]) extra",
                                  "name[X], rating[good]", "inform(name[X], rating[good]"])
def test_viggo_malformed(text):
    assert viggo_mod.parse_mr(text) is None


def test_viggo_parse_shapes():
    assert viggo_mod.parse_mr("request_attribute(player_perspective[])") == (
        "request_attribute", frozenset({("player_perspective", "")}))
    assert viggo_mod.parse_mr(" Verify_Attribute( name [Little  Nightmares], rating[ excellent ] ) ") == (
        "verify_attribute", frozenset({("name", "little nightmares"), ("rating", "excellent")}))
    assert set(viggo_mod.FUNCTIONS) >= {"inform", "request_explanation", "verify_attribute"}


def test_viggo_unparsable_reference_falls_back_to_text():
    metrics, parts = score("viggo", ["some  text", "inform(name[X])"], ["Some text", "inform(name[X])"])
    assert parts["exact_match"].tolist() == [1.0, 1.0]
    assert metrics["reference_parse_errors"] == 1 and metrics["parse_errors"] == 1
    # the fallback example is left out of the micro slot counts
    assert metrics["slot_precision"] == 1.0 and metrics["slot_recall"] == 1.0


# --- sql: exact match ----------------------------------------------------------------------

@pytest.mark.parametrize("prediction, reference, same", [
    ("SELECT T1.name FROM singer AS T1", "SELECT name FROM singer", True),                  # table alias
    ("SELECT singer.name FROM singer", "SELECT name FROM singer", True),                     # qualified by table
    ("select Singer.Name from SINGER", "SELECT name FROM singer", True),                     # keyword/identifier case
    ('SELECT `Name` FROM [singer]', 'SELECT "name" FROM "Singer"', True),                    # quoting style
    ("SELECT  name\n FROM singer   WHERE age>30 ;", "SELECT name FROM singer WHERE age > 30", True),  # whitespace, ;
    ("SELECT name FROM singer WHERE country = 'france'",
     'SELECT name FROM singer WHERE country = "France"', True),                              # literal case and quotes
    ("SELECT count(*) AS total FROM singer", "SELECT COUNT(*) FROM singer", True),           # column alias
    ("SELECT count(*) total FROM singer", "SELECT count(*) AS total FROM singer", True),     # AS or not
    ("SELECT country, count(*) AS n FROM singer GROUP BY country ORDER BY n DESC",
     "SELECT country, COUNT(*) FROM singer GROUP BY country ORDER BY COUNT(*) DESC", True),  # alias used in ORDER BY
    ("SELECT T2.name FROM concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.id WHERE T1.year = 2014",
     "SELECT singer.name FROM concert INNER JOIN singer ON concert.singer_id = singer.id WHERE concert.year = 2014",
     True),                                                                                   # join aliases
    ("SELECT T1.name FROM singer AS T1 WHERE EXISTS (SELECT 1 FROM concert AS T2 WHERE T2.singer_id = T1.id)",
     "SELECT singer.name FROM singer WHERE EXISTS (SELECT 1 FROM concert WHERE concert.singer_id = singer.id)",
     True),                                                                                   # correlated subquery
    ("SELECT name FROM singer ORDER BY age ASC", "SELECT name FROM singer ORDER BY age", True),
    ("SELECT T1.* FROM singer AS T1", "SELECT * FROM singer", True),                        # qualified star
    ("SELECT name AS n FROM singer UNION SELECT title AS t FROM song",
     "SELECT name FROM singer UNION SELECT title FROM song", True),                          # aliases in a UNION
    ("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age DESC", False),
    ("SELECT country FROM singer", "SELECT name FROM singer", False),                        # a different query
    ("SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age > 31", False),
    ("SELECT name FROM singer WHERE country = 'Franc'", "SELECT name FROM singer WHERE country = 'France'", False),
    ("SELECT T1.name FROM employee AS T1 JOIN employee AS T2 ON T1.boss = T2.id",
     "SELECT T2.name FROM employee AS T1 JOIN employee AS T2 ON T1.boss = T2.id", False),  # self join: other side
])
def test_sql_exact_match(prediction, reference, same):
    metrics, parts = score("sql", [prediction], [reference])
    assert parts["exact_match"].tolist() == [float(same)], (parts["normalized_prediction"][0],
                                                            parts["normalized_reference"][0])
    assert metrics["parse_errors"] == 0


def test_sql_parse_errors_and_unparsable_reference():
    preds = ["SELECT name FROM singer WHERE", "I think the answer is 3", "SELECT", 'SELECT a FROM t WHERE b = "x',
             "SELECT name FROM singer; SELECT age FROM singer", "SELECT name FROM singer"]
    refs = ["SELECT name FROM singer", "SELECT name FROM singer", "SELECT name FROM singer",
            'select a from t where b = "x',
            "SELECT name FROM singer", "SELECT name FROM singer"]
    metrics, parts = score("sql", preds, refs)
    # the 4th reference does not parse either: text comparison (case and whitespace folded) says equal...
    # ...but the prediction does not parse, which scores 0 whatever the reference
    assert parts["parsed"].tolist() == [False, False, False, False, False, True]
    assert parts["exact_match"].tolist() == [0, 0, 0, 0, 0, 1]
    assert metrics["parse_errors"] == 5
    assert metrics["reference_parse_errors"] == 1
    assert metrics["exact_match"] == pytest.approx(1 / 6)
    assert metrics["execution_match"] is None
    assert "execution_match" not in parts.columns


def test_sql_unparsable_reference_compared_as_text():
    # a reference sqlglot rejects (LIMIT without a count) is compared as text; a parsable one by its
    # normalised form
    ref = "SELECT a FROM t WHERE b = 1 LIMIT"
    assert sql_mod.normalize_sql(ref) is None
    metrics, parts = score("sql", ["SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 1"],
                           ["select a  from t where b = 1 ;", ref])
    assert parts["exact_match"].tolist() == [1.0, 0.0]
    assert metrics["reference_parse_errors"] == 1


# --- sql: execution match ------------------------------------------------------------------

SINGERS = [(1, "Ann", "France", 30), (2, "Bob", "France", 45), (3, "Cid", "Spain", 45), (4, "Dee", "Italy", 22),
           (5, "Bob", "Spain", 33)]


@pytest.fixture
def databases(tmp_path):
    folder = tmp_path / "databases"
    (folder / "concert").mkdir(parents=True)
    conn = sqlite3.connect(folder / "concert" / "concert.sqlite")
    conn.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGERS)
    conn.commit()
    conn.close()
    return folder


def test_sql_execution_match(databases):
    cases = [
        # (prediction, reference, exact, execution)
        # multiset: same rows in another order (the reference has no ORDER BY)
        ("SELECT name FROM singer WHERE age >= 31 ORDER BY name", "SELECT name FROM singer WHERE age > 30", 0, 1),
        # multiset, not set: DISTINCT loses the second Bob
        ("SELECT DISTINCT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE age > 30", 0, 0),
        # ORDER BY in the reference: the same rows in another order do not match
        ("SELECT name FROM singer ORDER BY age DESC, id", "SELECT name FROM singer ORDER BY age, id", 0, 0),
        ("SELECT T1.name FROM singer AS T1 ORDER BY T1.age ASC, T1.id", "SELECT name FROM singer ORDER BY age, id",
         1, 1),
        # a failing predicted query
        ("SELECT nickname FROM singer", "SELECT name FROM singer", 0, 0),
        # a prediction that does not parse is not run
        ("SELECT name FROM", "SELECT name FROM singer", 0, 0),
        # a reference that fails: its exact match stands
        ("SELECT missing FROM singer", "SELECT missing FROM singer", 1, 1),
        # the same answer from another query, under another column name ("France" is a string in SQLite)
        ("SELECT count(*) AS n FROM singer WHERE country = 'France'",
         'SELECT count(name) FROM singer WHERE country = "France"', 0, 1),
    ]
    preds, refs, em, ex = map(list, zip(*cases))
    metrics, parts = score("sql", preds, refs, {"db_id": ["concert"] * len(cases)}, databases=str(databases),
                           metric="execution_match")
    assert parts["exact_match"].tolist() == em
    assert parts["execution_match"].tolist() == ex
    assert parts["correct"].tolist() == ex  # the headline
    assert metrics["execution_match"] == 0.5
    assert metrics["exact_match"] == pytest.approx(2 / 8)
    assert metrics["execution_errors"] == 1 and "no such column" in parts["execution_error"][4]
    assert metrics["reference_execution_errors"] == 1 and parts["reference_execution_error"][6] is not None
    assert metrics["parse_errors"] == 1


def test_sql_literal_case_in_execution(databases):
    # 'france' matches no row in SQLite (= is case-sensitive): exact match forgives the case, execution does not
    metrics, parts = score("sql", ["SELECT count(*) FROM singer WHERE country = 'france'"],
                           ["SELECT count(*) FROM singer WHERE country = 'France'"], {"db_id": ["concert"]},
                           databases=str(databases))
    assert parts["exact_match"].tolist() == [1.0] and parts["execution_match"].tolist() == [0.0]
    assert parts["correct"].tolist() == [1.0]  # headline: exact_match by default


def test_sql_execution_time_limit(databases):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    metrics, parts = score("sql", [endless], ["SELECT count(*) FROM singer"], {"db_id": ["concert"]},
                           databases=str(databases), timeout_s=0.3)
    assert parts["execution_match"].tolist() == [0.0]
    assert metrics["execution_errors"] == 1 and "timed out" in parts["execution_error"][0]


def test_sql_databases_are_read_only(databases):
    db = sql_mod.Databases(str(databases), 5)
    try:
        with pytest.raises(sql_mod.QueryError, match="readonly"):
            db.run("concert", "DELETE FROM singer")
        assert len(db.run("concert", "SELECT * FROM singer")) == 5
    finally:
        db.close()


def test_sql_missing_database_or_db_id(databases):
    with pytest.raises(DataError, match="no database file .*nowhere.sqlite for db_id 'nowhere'"):
        score("sql", ["SELECT 1"], ["SELECT 1"], {"db_id": ["nowhere"]}, databases=str(databases))
    with pytest.raises(ValueError, match="column 'db_id'"):
        score("sql", ["SELECT 1"], ["SELECT 1"], {}, databases=str(databases))


# --- gsm8k ---------------------------------------------------------------------------------

GSM_REFS = ["She sells 1,000 eggs.\n#### 1000", "#### 72", "#### 72", "#### 72", "It drops 5.\n#### -5", "#### 18",
            "#### 72", "#### 5"]
GSM_PREDS = [
    "So 1,000 in total.\n#### 1,000",                          # thousands separator: strict and flexible
    "She pays $72.\n#### $72",                                 # '$' after ####: strict fails, flexible takes $72
    "The answer is 72.",                                       # no ####: last number, trailing period
    "#### 72.0",                                               # 72.0 == 72
    "The temperature drops to -5 degrees.\n#### -5",           # negative
    "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars, so 20",          # no ####: the last number (20) is wrong
    "#### 7,2",                                                # not a thousands separator: not a number
    "#### 5\nWait, maybe 6",                                   # flexible prefers #### N over the last number
]


def test_gsm8k_hand_worked():
    metrics, parts = score("gsm8k", GSM_PREDS, GSM_REFS)
    assert parts["strict_correct"].tolist() == [1, 0, 0, 1, 1, 0, 0, 1]
    assert parts["flexible_correct"].tolist() == [1, 1, 1, 1, 1, 0, 0, 1]
    assert parts["format_error"].tolist() == [False, True, True, False, False, True, False, False]
    assert parts["answer_strict"].tolist() == ["1,000", None, None, "72.0", "-5", None, "7,2", "5"]
    assert parts["answer_flexible"].tolist() == ["1,000", "$72", "72.", "72.0", "-5", "20", "7,2", "5"]
    assert parts["reference_answer"].tolist() == ["1000", "72", "72", "72", "-5", "18", "72", "5"]
    assert parts["correct"].tolist() == [1, 1, 1, 1, 1, 0, 0, 1]  # default headline: flexible
    assert metrics["strict_accuracy"] == 0.5
    assert metrics["flexible_accuracy"] == 0.75
    assert metrics["format_errors"] == 3 and metrics["n"] == 8 and metrics["reference_format_errors"] == 0


def test_gsm8k_answer_option_picks_the_headline():
    metrics, parts = score("gsm8k", GSM_PREDS, GSM_REFS, answer="strict")
    assert parts["correct"].tolist() == [1, 0, 0, 1, 1, 0, 0, 1]
    assert metrics["strict_accuracy"] == 0.5  # both reported whatever the headline
    assert metrics["flexible_accuracy"] == 0.75


@pytest.mark.parametrize("text, value", [("72", 72), ("72.00", 72), ("$72", 72), ("72.", 72), ("1,000", 1000),
                                         ("$1,234,567.50", 1234567.5), ("-5", -5), (".5", 0.5), ("7,2", None),
                                         ("1,00", None), ("...", None), ("1.2.3", None), (None, None)])
def test_gsm8k_numbers(text, value):
    got = gsm8k_mod.number(text)
    assert (got is None) if value is None else (float(got) == value)


def test_gsm8k_reference_without_marker():
    metrics, parts = score("gsm8k", ["#### 4"], ["2 + 2 = 4"])
    assert parts["reference_answer"].tolist() == ["4"]
    assert metrics["strict_accuracy"] == 1.0 and metrics["reference_format_errors"] == 1


def test_gsm8k_flexible_skips_matches_without_digits():
    assert gsm8k_mod.extract_flexible("It is 12 ... or so...") == "12"
    assert gsm8k_mod.extract_flexible("no numbers here...") is None
