from portevoix.native import use_if_current

# The compiled (mypyc) hot modules, if built from the sources on disk; else the sources.
use_if_current("scoring")
