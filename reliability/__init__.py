"""On-demand reliability runs (outside the default test run): long convergence trials and the churn soak."""
