from .cli import main

# Guarded: a process started by multiprocessing's "spawn" (Dask's LocalCluster workers) imports this module again.
if __name__ == "__main__":
    raise SystemExit(main())
