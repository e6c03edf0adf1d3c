"""The machinery that runs the study: notebooks for make, dependencies, reuse of committed runs, models, the command line."""
