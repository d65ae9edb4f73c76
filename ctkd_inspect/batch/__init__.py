"""Device-resident, batched engines: Soft-DTW (numba on the CPU, Triton on CUDA, a torch fallback) and the
DWA-KD band. :mod:`ctkd_inspect.batch.softdtw` needs torch; :mod:`ctkd_inspect.batch.band` and
:mod:`ctkd_inspect.batch._softdtw_cpu` work with numpy alone."""
