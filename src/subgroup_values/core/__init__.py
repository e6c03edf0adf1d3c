"""Where things are, run records, findings as claims, the paper's reported numbers and the profiles' run plan."""
