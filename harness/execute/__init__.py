"""Training what a plan is missing: the plan, the local executor and the Ray executor."""
