"""Commands that are not pipeline stages (dvc.yaml never runs them): the review report of a
branch, the sweep plans and the queue that runs them. Run as `python -m tools.<name>`."""
