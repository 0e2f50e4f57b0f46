"""The calculator service: option prices, Greeks and implied volatilities, single and batched, and portfolio
Greeks aggregation, on top of the compiled ``core_ext`` kernel (issue 4)."""
