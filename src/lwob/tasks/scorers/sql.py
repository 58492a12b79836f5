"""sql: text-to-SQL (sql-create-context, WikiSQL, Spider): exact match after normalising both
queries with sqlglot (dialect sqlite), and execution match on the SQLite databases.

Exact match
-----------
Prediction and reference are each parsed with sqlglot (``read="sqlite"``) into exactly one
query (SELECT, set operation or WITH; a trailing ``;`` is fine). The parsed trees are
rewritten as below and printed back (``identify=True``: every identifier quoted the same way;
no comments); the example matches when the two texts are equal. What is normalised, and why:

- keyword, function and operator spelling (``select``/``SELECT``, ``count``/``COUNT``,
  ``!=``/``<>``), whitespace and comments: the printer writes one canonical form;
- identifier case and quoting style (``"Name"``, ```name```, ``[name]``, ``name``): SQLite
  resolves identifiers case-insensitively, quoted or not, so sqlglot's
  ``normalize_identifiers`` for SQLite lowercases them, and the printer quotes all alike;
- table aliases: ``SELECT T1.name FROM singer AS T1``, ``SELECT singer.name FROM singer`` and
  ``SELECT name FROM singer`` are one query. Every column qualifier is resolved to its source
  through sqlglot's scopes (``optimizer.scope.traverse_scope``, outer scopes for correlated
  subqueries); every source (table or derived table) is then named by its position in the
  query (``_0``, ``_1``, ... as ``qualify_tables(canonicalize_table_aliases=True)`` does), and
  in a SELECT with a single source the qualifiers of that source's columns are dropped.
  Unqualified columns of a SELECT with several sources stay unqualified: without the schema
  their table cannot be known, so ``SELECT name FROM a JOIN b ...`` and ``SELECT T2.name ...``
  stay different (execution match judges those);
- the output column aliases of the outermost SELECT (``SELECT count(*) AS total`` vs
  ``SELECT count(*)``, with or without ``AS``): they only name the result's columns, not its
  values. References to them in that SELECT's ORDER BY and HAVING become the aliased
  expression; an alias also used in WHERE, GROUP BY or a join condition is kept;
- string literal values are compared case-insensitively (lowercased): WikiSQL-derived
  answers differ in the casing of the values they quote (``"Tom Brady"`` / ``"tom brady"``);
- a double-quoted word in a value position (right of a comparison or LIKE/GLOB, in an IN
  list, a BETWEEN bound), e.g. ``WHERE team = "Boston"``: SQLite reads it as a string when no
  column has that name, and the datasets (WikiSQL, Spider) write their values that way, so it
  counts as the string ``'Boston'``;
- ``INNER JOIN`` = ``JOIN``, ``LEFT OUTER JOIN`` = ``LEFT JOIN``, ``ORDER BY x ASC`` =
  ``ORDER BY x``.

Not normalised: the order of conditions, projections, joins and GROUP BY items, comma joins
vs JOIN ... ON, numbers vs quoted numbers (``5`` vs ``'5'``), equivalent rewrites (``>= 31``
vs ``> 30``). Those differ in the text and are what execution match is for.

A prediction that does not parse (or is not one query) scores 0 on both metrics and is
counted in ``parse_errors``. A reference that does not parse is compared as text (stripped,
trailing ``;`` dropped, whitespace collapsed, case folded) and counted in
``reference_parse_errors``.

Execution match
---------------
With option ``databases`` (a folder in Spider's layout, ``<databases>/<db_id>/<db_id>.sqlite``;
the eval examples need a ``db_id`` column, which ``context_columns_for`` then asks for), both
queries run on that database opened read-only (``file:...?mode=ro``) with a time limit
(``timeout_s``, default 5 s, enforced by a progress handler that interrupts SQLite) and at most
``MAX_ROWS`` rows. Results are compared as multisets of rows, or as ordered lists when the
reference has a top-level ORDER BY. Column order counts; values compare as Python values
(``1 == 1.0``). A predicted query that fails, times out or returns too many rows scores 0
(``execution_errors``); a reference query that fails falls back to that example's exact
match (``reference_execution_errors``). A missing database file is a DataError.
``execution_match`` is None without ``databases``.

Options: ``databases``, ``timeout_s``, ``metric: exact_match|execution_match`` (the headline;
``execution_match`` only with ``databases``).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from ...errors import ConfigError, DataError
from .base import Scorer, check_lengths, choice, frame, mean, normalize_space, option_key, register

#: most rows read from one query's result (a runaway join of a predicted query stops there)
MAX_ROWS = 100_000
METRIC_CHOICES = ("exact_match", "execution_match")
DEFAULT_TIMEOUT_S = 5.0


# --- exact match ---------------------------------------------------------------------------

def parse_query(sql: str):
    """The sqlglot tree of ``sql`` when it is exactly one query, else None."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(str(sql), read="sqlite") if s is not None]
    except (SqlglotError, RecursionError):
        return None
    if len(statements) != 1:
        return None
    query = statements[0]
    while isinstance(query, exp.Subquery) and not query.alias:
        query = query.this
    if not isinstance(query, exp.Query):
        return None
    if any(not select.expressions for select in query.find_all(exp.Select)):
        return None  # "SELECT" alone parses
    return query


def _values_as_strings(query) -> None:
    """A double-quoted, unqualified name in a value position becomes a string literal."""
    from sqlglot import exp

    def is_quoted_name(node) -> bool:
        return (isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier)
                and node.this.quoted)

    values = []
    for node in query.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Glob):
        values.append(node.expression)
    for node in query.find_all(exp.In):
        values.extend(node.expressions)
    for node in query.find_all(exp.Between):
        values.extend([node.args.get("low"), node.args.get("high")])
    for value in values:
        if is_quoted_name(value):
            value.replace(exp.Literal.string(value.this.this))


def _canonical_sources(query) -> None:
    """Name every source by its position (_0, _1, ...), point each qualified column at its
    source's new name, and drop the qualifiers in SELECTs with one source."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    scopes = traverse_scope(query)
    home: dict[int, object] = {}  # column -> the innermost scope it appears in (scopes come inner first)
    columns: dict[int, exp.Column] = {}
    for scope in scopes:
        for column in [*scope.columns, *(c for c in scope.stars if isinstance(c, exp.Column))]:  # T1.* too
            home.setdefault(id(column), scope)
            columns[id(column)] = column

    def source_node(scope, name: str):
        """The node that names a source of ``scope`` (a Table, or the Subquery of a derived
        table: scopes give its inner query), None when ``name`` is not one."""
        hit = scope.selected_sources.get(name)
        if hit is None:
            return None
        node = hit[0]
        return node.parent if isinstance(node, exp.Query) and isinstance(node.parent, exp.Subquery) else node

    resolved: dict[int, exp.Expr] = {}  # column -> its source node
    for key, column in columns.items():
        if not column.table:
            continue
        scope = home[key]
        while scope is not None:
            node = source_node(scope, column.table)
            if node is not None:
                resolved[key] = node
                break
            scope = scope.parent
    sources = {id(node): node for scope in scopes for node in map(lambda n: source_node(scope, n),
                                                                     scope.selected_sources)}
    names: dict[int, str] = {}
    for node in query.walk(bfs=False):
        if id(node) in sources and id(node) not in names:
            names[id(node)] = f"_{len(names)}"
    for key, name in names.items():
        node = sources[key]
        alias = node.args.get("alias")
        if alias is None:
            alias = exp.TableAlias()
            node.set("alias", alias)
        alias.set("this", exp.to_identifier(name))
    single = {id(scope): source_node(scope, next(iter(scope.selected_sources)))
              for scope in scopes if len(scope.selected_sources) == 1}
    for key, node in resolved.items():
        column = columns[key]
        if single.get(id(home[key])) is node:
            column.set("table", None)
        elif id(node) in names:
            column.set("table", exp.to_identifier(names[id(node)]))


def _outer_selects(query) -> list:
    """The SELECTs whose projections are the query's result columns (both sides of a set
    operation without its own ORDER BY, which could name them)."""
    from sqlglot import exp

    if isinstance(query, exp.Select):
        return [query]
    if isinstance(query, exp.SetOperation) and not query.args.get("order"):
        return _outer_selects(query.left) + _outer_selects(query.right)
    return []


def _drop_output_aliases(query) -> None:
    """Drop the column aliases of the outermost SELECT(s), expanding their uses in ORDER BY
    and HAVING (an alias also used in WHERE, GROUP BY or a join condition is kept)."""
    from sqlglot import exp

    for select in _outer_selects(query):
        aliases = {a.alias: a for a in select.expressions if isinstance(a, exp.Alias)}
        if not aliases:
            continue

        def uses(key: str) -> list:
            """Unqualified columns named like an alias in a clause of this SELECT (not in its
            subqueries)."""
            clauses = select.args.get(key)
            found = []
            for clause in clauses if isinstance(clauses, list) else [clauses]:
                if clause is not None:
                    found += [c for c in clause.walk(prune=lambda n: isinstance(n, exp.Query))
                              if isinstance(c, exp.Column) and not c.table and c.name in aliases]
            return found

        kept = {c.name for key in ("where", "group", "joins") for c in uses(key)}
        for key in ("order", "having"):
            for column in uses(key):
                if column.name not in kept:
                    column.replace(aliases[column.name].this.copy())
        for name, alias in aliases.items():
            if name not in kept:
                alias.replace(alias.this)


def normalize_query(query) -> str:
    """The canonical text of a parsed query (see the module docstring)."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    query = query.copy()
    _values_as_strings(query)
    query = normalize_identifiers(query, dialect="sqlite")
    try:
        candidate = query.copy()
        _canonical_sources(candidate)
        query = candidate
    except SqlglotError:  # e.g. one alias used twice: keep the sources as written
        pass
    _drop_output_aliases(query)
    for literal in query.find_all(exp.Literal):
        if literal.is_string:
            literal.set("this", literal.this.lower())
    for join in query.find_all(exp.Join):
        if join.args.get("kind") in ("INNER", "OUTER"):
            join.set("kind", None)
    for ordered in query.find_all(exp.Ordered):
        if not ordered.args.get("desc"):
            ordered.set("desc", None)
    return query.sql(dialect="sqlite", identify=True, comments=False)


def normalize_sql(sql: str) -> str | None:
    """The canonical text of ``sql``, or None when it does not parse as one query."""
    from sqlglot.errors import SqlglotError

    query = parse_query(sql)
    if query is None:
        return None
    try:
        return normalize_query(query)
    except (SqlglotError, RecursionError):
        return None


def plain_text(sql: str) -> str:
    """The fallback comparison of an unparsable reference: stripped, no trailing ';',
    whitespace collapsed, case folded."""
    return normalize_space(str(sql)).rstrip(";").strip().casefold()


# --- execution match -----------------------------------------------------------------------

class QueryError(Exception):
    """A query failed, timed out or returned too many rows (the message says which)."""


class Databases:
    """Read-only connections to the SQLite files of a Spider-layout folder, opened on first use."""

    def __init__(self, folder: str, timeout_s: float):
        self.folder = Path(folder)
        self.timeout_s = float(timeout_s)
        self.connections: dict[str, object] = {}
        self._deadline = 0.0

    def path(self, db_id: str) -> Path:
        return self.folder / db_id / f"{db_id}.sqlite"

    def connection(self, db_id: str):
        import sqlite3

        if db_id not in self.connections:
            path = self.path(db_id)
            if not path.is_file():
                raise DataError(f"scorer_options.databases: no database file {path} for db_id {db_id!r}")
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            conn.text_factory = lambda b: b.decode("utf-8", errors="replace")  # Spider has some latin-1 text
            conn.set_progress_handler(lambda: int(time.monotonic() > self._deadline), 1000)
            self.connections[db_id] = conn
        return self.connections[db_id]

    def run(self, db_id: str, sql: str) -> list[tuple]:
        conn = self.connection(db_id)
        self._deadline = time.monotonic() + self.timeout_s
        try:
            cursor = conn.execute(sql)
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except Exception as e:  # noqa: BLE001 - any failure of a query is that query's error
            if time.monotonic() > self._deadline:
                raise QueryError(f"timed out after {self.timeout_s:g} s") from None
            raise QueryError(f"{type(e).__name__}: {e}") from None
        if len(rows) > MAX_ROWS:
            raise QueryError(f"more than {MAX_ROWS} rows")
        return [tuple(r) for r in rows]

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()


def same_result(predicted: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    return predicted == gold if ordered else Counter(predicted) == Counter(gold)


def _is_ordered(sql: str) -> bool:
    """Whether a query has a top-level ORDER BY (its row order is part of the answer)."""
    query = parse_query(sql)
    return bool(query is not None and query.args.get("order"))


# --- the scorer ----------------------------------------------------------------------------

@register("sql")
class SQL(Scorer):
    metrics = ("exact_match", "execution_match")
    option_keys = ("databases", "timeout_s", "metric")
    metric_display = {"exact_match": "exact match", "execution_match": "execution match"}

    @classmethod
    def check_options(cls, task_name, options):
        super().check_options(task_name, options)
        databases = options.get("databases")
        if databases is not None and (not isinstance(databases, str) or not databases.strip()):
            raise ConfigError(f"config key '{option_key(task_name, 'databases')}': expected the path of a folder "
                              f"of <db_id>/<db_id>.sqlite files, got {databases!r}")
        timeout = options.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"config key '{option_key(task_name, 'timeout_s')}': expected a number of "
                              f"seconds > 0, got {timeout!r}")
        metric = choice(task_name, options, "metric", METRIC_CHOICES, "exact_match")
        if metric == "execution_match" and databases is None:
            raise ConfigError(f"config key '{option_key(task_name, 'metric')}': execution_match needs "
                              f"'{option_key(task_name, 'databases')}' (the SQLite databases to run the queries on)")

    @classmethod
    def context_columns_for(cls, options):
        return ("db_id",) if (options or {}).get("databases") else ()

    @classmethod
    def headline(cls, options):
        return choice(None, options or {}, "metric", METRIC_CHOICES, "exact_match")

    @classmethod
    def score(cls, predictions, references, context, options):
        options = options or {}
        headline = cls.headline(options)
        check_lengths(predictions, references, context, cls.context_columns_for(options))
        cols: dict[str, list] = {k: [] for k in ("exact_match", "parsed", "reference_parsed",
                                                  "normalized_prediction", "normalized_reference")}
        for prediction, reference in zip(predictions, references):
            pred, ref = normalize_sql(prediction), normalize_sql(reference)
            if pred is None:
                hit = False
            elif ref is None:
                hit = plain_text(prediction) == plain_text(reference)
            else:
                hit = pred == ref
            for k, v in (("exact_match", float(hit)), ("parsed", pred is not None),
                         ("reference_parsed", ref is not None), ("normalized_prediction", pred),
                         ("normalized_reference", ref)):
                cols[k].append(v)
        metrics = {"exact_match": mean(cols["exact_match"]), "execution_match": None, "n": len(predictions),
                   "parse_errors": cols["parsed"].count(False),
                   "reference_parse_errors": cols["reference_parsed"].count(False)}
        if options.get("databases"):
            matches, errors, reference_errors = _execute(predictions, references, context["db_id"], options,
                                                         cols["exact_match"], cols["parsed"])
            cols.update(execution_match=matches, execution_error=errors, reference_execution_error=reference_errors)
            metrics.update(execution_match=mean(matches),
                           execution_errors=sum(e is not None for e in errors),
                           reference_execution_errors=sum(e is not None for e in reference_errors))
        return metrics, frame(cols, cols[headline])


def _execute(predictions, references, db_ids, options, exact, parsed):
    """Per example: execution match (0/1), the predicted query's error and the reference
    query's error (None when it ran)."""
    databases = Databases(options["databases"], options.get("timeout_s", DEFAULT_TIMEOUT_S))
    matches, errors, reference_errors = [], [], []
    gold_results: dict[tuple[str, str], tuple] = {}  # (db_id, reference) -> (rows or error, ordered)
    try:
        for i, (prediction, reference, db_id) in enumerate(zip(predictions, references, db_ids)):
            key = (str(db_id), reference)
            if key not in gold_results:
                try:
                    gold_results[key] = (databases.run(key[0], reference), _is_ordered(reference))
                except QueryError as e:
                    gold_results[key] = (e, False)
            gold, ordered = gold_results[key]
            error = None
            if isinstance(gold, QueryError):  # the reference cannot be run: its exact match stands
                match = exact[i]
            elif not parsed[i]:
                match = 0.0
            else:
                try:
                    match = float(same_result(databases.run(key[0], prediction), gold, ordered))
                except QueryError as e:
                    match, error = 0.0, str(e)
            matches.append(match)
            errors.append(error)
            reference_errors.append(str(gold) if isinstance(gold, QueryError) else None)
    finally:
        databases.close()
    return matches, errors, reference_errors
