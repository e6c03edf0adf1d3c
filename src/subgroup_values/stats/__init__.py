"""Scores, distances, intervals and the respondent-noise and dispersion machinery every analysis shares."""
