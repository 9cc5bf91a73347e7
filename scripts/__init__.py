"""The command-line scripts of the checkout (benchmarks, sweeps), each run as a file:
`python scripts/NAME.py`. This file lets code run from the checkout's root import one as a
module (`from scripts import capacity_sweep`), as experiments.lecture and the tests do; the
scripts themselves import rnnzoo as the installed package and nothing from each other."""
