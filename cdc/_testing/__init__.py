"""Private infrastructure: the throwaway MariaDB of the demo, the tests and the benchmarks."""
