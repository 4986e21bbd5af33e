"""Session reports: writing them, their schema and summary, reading earlier ones, comparing, baselines, trends."""
