"""The survey and the study: WVS-7 files, study configs, the question bank, subgroups, the pairs table, persona prompts."""
