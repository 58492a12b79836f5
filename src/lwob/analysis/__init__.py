"""Analysis over finished runs: aggregation, statistics, selection, increments, resource study, claims."""
