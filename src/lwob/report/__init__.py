"""Reporting: LaTeX/CSV tables, figures, failure marking and escaping for the report."""
