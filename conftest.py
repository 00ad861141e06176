# The exercise notebooks fail by design until a student solves them (var_tutorial/exercises.py), so
# `make test` does not collect them; an explicit path still runs one:
#   pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/exercises/02_multiscale_quantizer.ipynb
# (tests/test_exercises.py checks them: failing as released, passing when solved).
collect_ignore = ["notebooks/exercises"]
