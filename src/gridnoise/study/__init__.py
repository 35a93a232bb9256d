"""Studies: experiment files and their tasks, running them on Dask, reading their results, and
adding metrics to finished studies (`gridnoise evaluate`)."""
