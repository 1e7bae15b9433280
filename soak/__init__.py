"""On-demand soak runs (outside the default test run): long convergence trials, the churn soak and the abuse soak."""
