"""subgroup-values: can persona-prompted language models emulate the values of demographic subgroups?"""

__version__ = "0.1.0"
