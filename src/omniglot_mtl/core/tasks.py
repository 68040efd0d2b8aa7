"""The two tasks, named once: every drawing has an alphabet and a character.

Everything task-shaped is keyed by these names: the index's label columns (``<task>_idx``), the
packed arrays' labels, the index maps (``MAPS``: ``data/index/<map>.json`` and the checkpoint's
keys), the models' inputs and outputs, the loss weights, the metrics and predict's output.
"""

ALPHABET = "alphabet"
CHARACTER = "character"
TASKS = (ALPHABET, CHARACTER)
MAPS = {ALPHABET: "alphabets", CHARACTER: "characters"}  # name -> index, one map per task
