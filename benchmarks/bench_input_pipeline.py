"""Kept for old commands: the side-by-side benchmark now lives in ``bench_loading.py``.

    python benchmarks/bench_input_pipeline.py --threads 1   # same as bench_loading.py --threads 1
"""

from bench_loading import main

if __name__ == "__main__":
    main()
