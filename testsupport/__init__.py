"""Test servers shared by the unit suite (tests/) and the benchmark (bench/): neither imports the other."""
