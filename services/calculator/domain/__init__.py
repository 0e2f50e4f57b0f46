"""Pure rules of the calculator: input validation, batch shape rules, pricing calls and aggregation."""
